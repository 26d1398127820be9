import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import type { BackendAnswer } from '../backends/socket-reads.ts';
import { mayUseReadAhead, READ_AHEAD_MAX_IN_FLIGHT, readAheadTarget, startReadAhead } from './read-ahead.ts';
import { createReadBalancer } from './read-balancer.ts';

const backend = (name: string): Backend => ({
  name,
  httpUrl: `http://${name}.invalid:35354`,
  sshHost: `${name}.invalid`,
  sshPort: 35353,
});
const named = (...names: string[]) => names.map((name) => ({ name }));

/** An answer whose end the test decides: `finish()` ends it, `destroy()` records that it was closed. */
function answerStub() {
  const listeners: (() => void)[] = [];
  const stub = {
    destroyed: false,
    onFinished: (listener: () => void) => listeners.push(listener),
    destroy() {
      stub.destroyed = true;
      stub.finish();
    },
    finish: () => {
      for (const listener of listeners.splice(0)) listener();
    },
  };
  return stub;
}
const asAnswer = (stub: ReturnType<typeof answerStub>) => stub as unknown as BackendAnswer;

describe('read ahead', () => {
  it('goes to the healthy owner with the fewest reads in flight, ties in preference order', () => {
    const balancer = createReadBalancer();
    const owners = [backend('a'), backend('b'), backend('c')];
    const all = () => true;
    assert.equal(readAheadTarget(owners, all, balancer)?.name, 'a');
    balancer.start('a');
    assert.equal(readAheadTarget(owners, all, balancer)?.name, 'b');
    assert.equal(readAheadTarget(owners, (name) => name === 'c', balancer)?.name, 'c');
    assert.equal(
      readAheadTarget(owners, () => false, balancer),
      undefined,
      'no healthy owner: none',
    );
  });

  it('is not used while the gateway has READ_AHEAD_MAX_IN_FLIGHT reads in flight', () => {
    const balancer = createReadBalancer();
    const owners = [backend('a'), backend('b'), backend('c')];
    const reads = Array.from({ length: READ_AHEAD_MAX_IN_FLIGHT }, (_, i) =>
      balancer.start('abc'[i % 3] as string),
    );
    assert.equal(
      readAheadTarget(owners, () => true, balancer),
      undefined,
    );
    reads[0]?.finished();
    assert.ok(
      readAheadTarget(owners, () => true, balancer),
      'one fewer: read ahead again',
    );
  });

  // One case per row of the table in read-ahead.ts.
  it('may stand for an interchangeable holder wherever the balancer ranked it', () => {
    const holders = new Set(['b', 'c']);
    assert.equal(
      mayUseReadAhead('c', named('b', 'c', 'a'), (name) => holders.has(name)),
      true,
    );
  });

  it('may stand for the first candidate when no holder is interchangeable (a listing, a new path)', () => {
    assert.equal(
      mayUseReadAhead('a', named('a', 'b', 'c'), () => false),
      true,
    );
  });

  it('never stands for a backend the plan does not let answer first', () => {
    const holders = new Set(['b', 'c']);
    // Not a holder of the current version (it may have an older copy of the same size).
    assert.equal(
      mayUseReadAhead('a', named('b', 'c', 'a'), (name) => holders.has(name)),
      false,
    );
    // Not first and not interchangeable (behind on this user).
    assert.equal(
      mayUseReadAhead('b', named('a', 'b'), () => false),
      false,
    );
    // Touched by a failed write: left out of the candidates, even as a holder of the previous version.
    assert.equal(
      mayUseReadAhead('b', named('c'), (name) => holders.has(name)),
      false,
    );
  });

  it('a discarded answer is closed (also one still on its way) and leaves the balancer', async () => {
    const balancer = createReadBalancer();
    const stub = answerStub();
    let arrive: (answer: BackendAnswer) => void = () => {};
    const ahead = startReadAhead(backend('a'), () => new Promise((resolve) => (arrive = resolve)), balancer);
    assert.equal(balancer.inFlight().a, 1, 'counted while in flight');
    ahead.discard();
    ahead.discard();
    arrive(asAnswer(stub));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stub.destroyed, true);
    assert.equal(balancer.inFlight().a, 0);
    assert.equal(await ahead.take(), undefined, 'nothing to take once discarded');
  });

  it('a taken answer is not closed by discard; a failed request is taken as its error', async () => {
    const balancer = createReadBalancer();
    const stub = answerStub();
    const ahead = startReadAhead(backend('a'), async () => asAnswer(stub), balancer);
    assert.equal(await ahead.take(), asAnswer(stub));
    ahead.discard();
    assert.equal(stub.destroyed, false);
    assert.equal(balancer.inFlight().a, 1, 'in flight until the answer is over');
    stub.finish();
    assert.equal(balancer.inFlight().a, 0);

    const failed = startReadAhead(
      backend('b'),
      async () => {
        throw new Error('ECONNREFUSED');
      },
      balancer,
    );
    const taken = await failed.take();
    assert.ok(taken instanceof Error && taken.message === 'ECONNREFUSED', 'the error stands for its turn');
    assert.equal(balancer.inFlight().b, 0);
  });
});
