import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { createRing } from '@cring/ring';
import { createPlacement } from './placement.ts';

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
