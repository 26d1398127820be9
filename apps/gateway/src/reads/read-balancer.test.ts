import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createReadBalancer } from './read-balancer.ts';

const backends = (...names: string[]) => names.map((name) => ({ name }));
const names = (list: { name: string }[]) => list.map((b) => b.name);

describe('read balancer', () => {
  it('keeps preference order while nothing is in flight (sequential reads stay on the first holder)', () => {
    const balancer = createReadBalancer();
    const done = balancer.start('a');
    done.finished();
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['a', 'b', 'c']);
  });

  it('sends the next read to the holder with the fewest requests in flight, ties in preference order', () => {
    const balancer = createReadBalancer();
    const first = balancer.start('a');
    balancer.start('a');
    balancer.start('b');
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['c', 'b', 'a']);
    first.finished();
    first.finished(); // a second call changes nothing
    assert.equal(balancer.inFlight().a, 1);
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true)), ['c', 'a', 'b']);
  });

  it('spreads 16 concurrent reads evenly over three holders', () => {
    const balancer = createReadBalancer();
    const served = new Map<string, number>();
    for (let i = 0; i < 16; i++) {
      const [chosen] = balancer.order(backends('a', 'b', 'c'), () => true);
      const name = (chosen as { name: string }).name;
      balancer.start(name);
      served.set(name, (served.get(name) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(served), { a: 6, b: 5, c: 5 });
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

  it("does not count a read's own request in flight (read ahead) against its backend", () => {
    const balancer = createReadBalancer();
    balancer.start('a'); // this read's own, sent ahead
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true, 'a')), ['a', 'b', 'c']);
    balancer.start('a'); // another read's
    assert.deepEqual(names(balancer.order(backends('a', 'b', 'c'), () => true, 'a')), ['b', 'c', 'a']);
  });
});
