import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { createRing, type Ring } from '@cring/ring';
import { createPlacement, sparingAHolder } from './placement.ts';

const backends: Backend[] = ['b1', 'b2', 'b3'].map((name, i) => ({
  name,
  httpUrl: `http://127.0.0.1:${4001 + i}`,
  sshHost: '127.0.0.1',
  sshPort: 5001 + i,
}));

describe('account candidates', () => {
  const placementWith = (down: string[], primary?: string) =>
    createPlacement({
      ring: createRing(backends.map((b) => b.name)),
      backends,
      replicationFactor: 3,
      isHealthy: (name) => !down.includes(name),
      accountPrimary: () => primary,
      hasSpace: () => true,
    });
  const names = (down: string[], primary?: string) =>
    placementWith(down, primary)
      .accountCandidates()
      .map((b) => b.name);

  it('puts the account primary (the SSH lease holder) first, then the healthy ones in configured order', () => {
    assert.deepEqual(names([], 'b3'), ['b3', 'b1', 'b2']);
    assert.deepEqual(names(['b1'], 'b2'), ['b2', 'b3', 'b1']);
  });

  it('without a known primary, or with one whose HTTP is down, keeps the healthy-first configured order', () => {
    assert.deepEqual(names([]), ['b1', 'b2', 'b3']);
    assert.deepEqual(names(['b3'], 'b3'), ['b1', 'b2', 'b3']);
  });
});

const fourNames = ['a', 'b', 'c', 'd'];
const fourBackends: Backend[] = fourNames.map((name, i) => ({
  name,
  httpUrl: `http://127.0.0.1:${4101 + i}`,
  sshHost: '127.0.0.1',
  sshPort: 5101 + i,
}));

describe('write candidates', () => {
  it('leaves backends under their free-space reserve out of writes, not out of deletes', () => {
    const full = new Set<string>();
    const down = new Set<string>();
    const placement = createPlacement({
      ring: createRing(fourNames),
      backends: fourBackends,
      replicationFactor: 3,
      isHealthy: (name) => !down.has(name),
      hasSpace: (name) => !full.has(name),
    });
    const user = '11111111-1111-4111-8111-111111111111';
    const order = placement.writeCandidates(user).map((b) => b.name);
    assert.equal(order.length, 4);
    const [first, second, third, standIn] = order as [string, string, string, string];
    full.add(first);
    assert.deepEqual(
      placement.writeCandidates(user).map((b) => b.name),
      [second, third, standIn],
      'the next owner takes its place, then the stand-in',
    );
    assert.deepEqual(
      placement.deleteCandidates(user).map((b) => b.name),
      order,
      'a delete still reaches it (it frees space)',
    );
    down.add(second);
    assert.deepEqual(
      placement.writeCandidates(user).map((b) => b.name),
      [third, second, standIn],
      'down after healthy among the owners, full left out',
    );
    full.add(third);
    full.add(standIn);
    assert.deepEqual(
      placement.underReserve(),
      fourNames.filter((n) => full.has(n)),
    );
    assert.deepEqual(
      placement.writeCandidates(user).map((b) => b.name),
      [second],
    );
  });
});

const named = (name: string): Backend =>
  ({ name, httpUrl: `http://${name}`, sshHost: name, sshPort: 1 }) as Backend;
// A ring with a fixed preference order, so the test states the order it expects.
const ring: Ring = { preferenceList: (_key, n) => ['b1', 'b2', 'b3', 'b4'].slice(0, n) } as Ring;
const fixedOrder = createPlacement({
  ring,
  backends: ['b1', 'b2', 'b3', 'b4'].map(named),
  replicationFactor: 3,
  isHealthy: () => true,
  hasSpace: () => true,
});
const namesOf = (list: Backend[]) => list.map((b) => b.name);

describe('read candidates', () => {
  it('put the holders of the version first, also when they have changes pending for other paths', () => {
    const candidates = fixedOrder.readCandidates('user', new Set(['b2', 'b3']), new Set(['b1', 'b2', 'b3']));
    assert.deepEqual(namesOf(candidates), ['b2', 'b3', 'b4', 'b1']);
  });

  it('ask owners without pending changes before the rest, and those with pending changes last', () => {
    const candidates = fixedOrder.readCandidates('user', new Set(), new Set(['b1']));
    assert.deepEqual(namesOf(candidates), ['b2', 'b3', 'b4', 'b1']);
  });
});

describe('an overwrite spares a holder of the version it replaces', () => {
  const [b1, b2, b3] = backends as [Backend, Backend, Backend];
  const order = (holders: string[], down: string[] = []) =>
    sparingAHolder([b1, b2, b3], holders, 2, (name) => !down.includes(name)).map((b) => b.name);

  it('moves the last holder behind the next healthy candidate when the version is only on the first W', () => {
    assert.deepEqual(order(['b1', 'b2']), ['b1', 'b3', 'b2']);
    assert.deepEqual(order(['b2']), ['b1', 'b3', 'b2']);
  });

  it('keeps the order when a holder is outside the first W, the path is new, or no healthy candidate can stand in', () => {
    assert.deepEqual(order(['b1', 'b2', 'b3']), ['b1', 'b2', 'b3']);
    assert.deepEqual(order(['b1', 'b3']), ['b1', 'b2', 'b3']);
    assert.deepEqual(order([]), ['b1', 'b2', 'b3']);
    assert.deepEqual(order(['b1', 'b2'], ['b3']), ['b1', 'b2', 'b3']);
  });
});
