import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ManifestEntry } from '@cring/manifest';
import { CHARM_ID, fakeScanContext, userScanOf, worldOf } from './fake-scan-context.ts';
import { collectTombstones } from './tombstone-collection.ts';

const DAY_MS = 24 * 3600 * 1000;
const tombstoneAged = (ageMs: number, version: number): ManifestEntry => ({
  kind: 'tombstone',
  version,
  holders: ['b1', 'b2', 'b3'],
  atMs: Date.now() - ageMs,
});
const entries = () =>
  new Map<string, ManifestEntry>([
    ['/old', tombstoneAged(8 * DAY_MS, 3)],
    ['/young', tombstoneAged(DAY_MS, 5)],
  ]);
const world = () => worldOf({ b1: {}, b2: {}, b3: {} });

describe('collectTombstones', () => {
  it('forgets only a tombstone past its retention that covers nothing', async () => {
    const w = world();
    await collectTombstones(fakeScanContext(w), userScanOf(w, { entries: entries() }));
    assert.deepEqual(w.calls, ['removeTombstone /old v3']);
  });

  it('keeps it while a copy it covers is left, or its delete job is live', async () => {
    const w = world();
    const covered = userScanOf(w, { entries: entries() });
    covered.covered.add('/old|3');
    await collectTombstones(fakeScanContext(w), covered);
    const live = userScanOf(w, {
      entries: entries(),
      alive: new Map([['b2', [`delete-${CHARM_ID}-3-heal-x`]]]),
    });
    await collectTombstones(fakeScanContext(w), live);
    assert.deepEqual(w.calls, []);
  });

  it('keeps every tombstone unless every backend and the bucket were listed without error', async () => {
    const w = world();
    await collectTombstones(fakeScanContext(w), userScanOf(w, { entries: entries(), unreachable: ['b3'] }));
    await collectTombstones(
      fakeScanContext(w),
      userScanOf(w, { entries: entries(), s3: { state: 'unreachable', reason: 'stopped' } }),
    );
    const failed = userScanOf(w, { entries: entries() });
    failed.errors = 1;
    await collectTombstones(fakeScanContext(w), failed);
    assert.deepEqual(w.calls, []);
  });
});
