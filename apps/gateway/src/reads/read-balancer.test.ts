import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReadBalancer } from './read-balancer.ts';

const backends = (...names: string[]) => names.map((name) => ({ name }));
const names = (list: { name: string }[]) => list.map((b) => b.name);

describe('read balancer', () => {
  it('keeps preference order while nothing is known', () => {
    const balancer = createReadBalancer();
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['a', 'b', 'c']);
  });

  it('sends the next read to the holder with the fewest requests in flight', () => {
    const balancer = createReadBalancer();
    const first = balancer.start('a');
    balancer.start('a');
    balancer.start('b');
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['c', 'b', 'a']);
    first.finished();
    first.finished(); // a second call changes nothing
    assert.equal(balancer.snapshot().a?.inFlight, 1);
  });

  it('puts a clearly slower backend last, then keeps preference order', () => {
    let now = 0;
    const balancer = createReadBalancer({ nowMs: () => now });
    for (const [backend, latency] of [
      ['a', 30],
      ['b', 5],
      ['c', 5],
    ] as const) {
      const call = balancer.start(backend);
      now += latency;
      call.answered();
      call.finished();
    }
    assert.deepEqual(names(balancer.order(backends('a', 'c', 'b'), () => true)), ['c', 'b', 'a']);
  });

  it('does not reorder for small latency differences: sequential reads stay on the first holder', () => {
    let now = 0;
    const balancer = createReadBalancer({ nowMs: () => now });
    for (const [backend, latency] of [
      ['a', 6],
      ['b', 1],
      ['c', 3],
    ] as const) {
      const call = balancer.start(backend);
      now += latency;
      call.answered();
      call.finished();
    }
    // a is 5 ms slower than b, but not 5 ms more than twice b's: the preference order stands.
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['a', 'b', 'c']);
  });

  it('averages latency, so one slow answer does not exile a backend', () => {
    let now = 0;
    const balancer = createReadBalancer({ nowMs: () => now });
    const answer = (backend: string, latency: number) => {
      const call = balancer.start(backend);
      now += latency;
      call.answered();
      call.finished();
    };
    answer('a', 10);
    answer('a', 110);
    assert.equal(balancer.snapshot().a?.latencyMs, 20);
  });

  it('reorders only the leading interchangeable run: never puts a non-holder before a holder', () => {
    const balancer = createReadBalancer();
    for (let i = 0; i < 5; i++) balancer.start('a');
    for (let i = 0; i < 3; i++) balancer.start('b');
    const holders = new Set(['a', 'b']);
    // c holds nothing current: it stays behind the holders however idle it is.
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), (n) => holders.has(n))), ['b', 'a', 'c']);
    // A run of one (or none) is left as it is, and so is everything after the run.
    assert.deepEqual(names(balancer.order(backends('a', 'c', 'b'), (n) => holders.has(n))), ['a', 'c', 'b']);
    assert.deepEqual(names(balancer.order(backends('c', 'a', 'b'), (n) => holders.has(n))), ['c', 'a', 'b']);
  });
});
