import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { createRing } from './ring.ts';

const names = (count: number) => Array.from({ length: count }, (_, i) => `backend-${i + 1}`);
// Fixed keys so the figures are reproducible run to run.
const keys = Array.from(
  { length: 10_000 },
  (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
);

describe('preferenceList', () => {
  it('returns n distinct backends, capped at the number of backends', () => {
    const ring = createRing(names(5));
    for (const key of keys.slice(0, 500)) {
      const list = ring.preferenceList(key, 3);
      assert.equal(list.length, 3);
      assert.equal(new Set(list).size, 3);
      for (const backend of list) assert.ok(ring.backends.includes(backend));
    }
    assert.equal(createRing(names(2)).preferenceList('k', 3).length, 2);
    assert.deepEqual(createRing(names(2)).preferenceList('k', 0), []);
  });

  it('is deterministic: the same list from a fresh ring and whatever the configured order', () => {
    const a = createRing(names(5));
    const b = createRing(names(5).reverse());
    for (const key of keys.slice(0, 1000)) {
      assert.deepEqual(a.preferenceList(key, 3), b.preferenceList(key, 3));
      assert.deepEqual(a.preferenceList(key, 3), a.preferenceList(key, 3));
    }
  });

  it('a longer list extends a shorter one', () => {
    const ring = createRing(names(7));
    for (const key of keys.slice(0, 500)) {
      assert.deepEqual(ring.preferenceList(key, 5).slice(0, 3), ring.preferenceList(key, 3));
    }
  });

  it('rejects duplicate and empty names', () => {
    assert.throws(() => createRing(['a', 'a']), /duplicate/);
    assert.throws(() => createRing(['a', '']), /empty/);
  });

  for (const count of [3, 5, 7]) {
    it(`balances first-owner slots within ±15% of fair over ${count} backends`, () => {
      const ring = createRing(names(count));
      const slots = new Map<string, number>();
      for (const key of keys) {
        const first = ring.preferenceList(key, 1)[0] as string;
        slots.set(first, (slots.get(first) ?? 0) + 1);
      }
      const fair = keys.length / count;
      const deviations = ring.backends.map((b) => ((slots.get(b) ?? 0) - fair) / fair);
      console.log(
        `balance ${count} backends: ${ring.backends.map((b, i) => `${b}=${slots.get(b) ?? 0} (${((deviations[i] as number) * 100).toFixed(1)}%)`).join(', ')}`,
      );
      for (const deviation of deviations) assert.ok(Math.abs(deviation) <= 0.15, `deviation ${deviation}`);
    });
  }

  for (const count of [3, 5, 7]) {
    it(`moves about 1/N of keys when one of ${count} backends is added or removed`, () => {
      const before = createRing(names(count));
      const added = createRing(names(count + 1));
      const removed = createRing(names(count - 1));
      const replicas = 3;
      let firstMovedAdd = 0;
      let setMovedAdd = 0;
      let firstMovedRemove = 0;
      let setMovedRemove = 0;
      const sameSet = (x: string[], y: string[]) => x.length === y.length && x.every((b) => y.includes(b));
      for (const key of keys) {
        const was = before.preferenceList(key, replicas);
        const nowAdded = added.preferenceList(key, replicas);
        const nowRemoved = removed.preferenceList(key, replicas);
        if (was[0] !== nowAdded[0]) firstMovedAdd++;
        if (was[0] !== nowRemoved[0]) firstMovedRemove++;
        if (!sameSet(was, nowAdded)) setMovedAdd++;
        if (!sameSet(was, nowRemoved)) setMovedRemove++;
      }
      const fraction = (moved: number) => moved / keys.length;
      console.log(
        `movement ${count}→${count + 1}: first owner ${fraction(firstMovedAdd).toFixed(3)} (ideal ${(1 / (count + 1)).toFixed(3)}), owner set ${fraction(setMovedAdd).toFixed(3)}; ` +
          `${count}→${count - 1}: first owner ${fraction(firstMovedRemove).toFixed(3)} (ideal ${(1 / count).toFixed(3)}), owner set ${fraction(setMovedRemove).toFixed(3)}`,
      );
      // Only keys that involve the changed backend may move: the new backend becomes first owner of ~1/(N+1)
      // of keys, and a removed backend's ~1/N of keys move; nothing else changes.
      assert.ok(Math.abs(fraction(firstMovedAdd) - 1 / (count + 1)) < 0.06);
      assert.ok(Math.abs(fraction(firstMovedRemove) - 1 / count) < 0.06);
      for (const key of keys) {
        const was = before.preferenceList(key, replicas);
        const nowAdded = added.preferenceList(key, replicas);
        if (!nowAdded.includes(`backend-${count + 1}`)) assert.deepEqual(nowAdded, was);
      }
    });
  }

  it('handles random keys', () => {
    const ring = createRing(names(3));
    assert.equal(ring.preferenceList(randomUUID(), 3).length, 3);
  });
});
