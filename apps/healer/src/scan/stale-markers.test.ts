import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CHARM_ID, fakeScanContext, userScanOf, worldOf } from './fake-scan-context.ts';
import type { PendingMarker } from './job-states.ts';
import { clearStaleMarkers } from './stale-markers.ts';

const markers: PendingMarker[] = [
  { target: 'b1', jobId: `replicate-${CHARM_ID}-2-heal-a`, sinceMs: 0, status: { state: 'completed' } },
  { target: 'b2', jobId: `replicate-${CHARM_ID}-3`, sinceMs: 0, status: { state: 'alive' } },
  { target: 's3', jobId: `backup-${CHARM_ID}-2`, sinceMs: 0, status: { state: 'failed', reason: 'gave up' } },
  { target: 'b3', jobId: `delete-${CHARM_ID}-4`, sinceMs: Date.now(), status: { state: 'missing' } },
  { target: 'b3', jobId: `seq-${CHARM_ID}-abc-1`, sinceMs: 0, status: { state: 'completed' } },
];

describe('clearStaleMarkers', () => {
  it('clears markers of finished or failed file repairs on targets this scan listed', async () => {
    const w = worldOf({ b1: {}, b2: {}, b3: {} });
    const ctx = fakeScanContext(w);
    await clearStaleMarkers(ctx, userScanOf(w), markers);
    // alive, missing within the grace period, and not a file repair: kept.
    assert.deepEqual(w.calls, [
      `removePending b1 replicate-${CHARM_ID}-2-heal-a`,
      `removePending s3 backup-${CHARM_ID}-2`,
    ]);
    assert.equal(ctx.recorder.stats.staleMarkersCleared, 2);
  });

  it('keeps them when the target was not listed, a path changed meanwhile, or the scan met an error', async () => {
    const w = worldOf({ b1: {}, b2: {}, b3: {} });
    await clearStaleMarkers(
      fakeScanContext(w),
      userScanOf(w, { unreachable: ['b1'], s3: { state: 'unreachable', reason: 'stopped' } }),
      markers,
    );
    const recent = userScanOf(w);
    recent.recent = 1;
    await clearStaleMarkers(fakeScanContext(w), recent, markers);
    const failed = userScanOf(w);
    failed.errors = 1;
    await clearStaleMarkers(fakeScanContext(w), failed, markers);
    assert.deepEqual(w.calls, []);
  });
});
