/**
 * Table row M1 (a pending marker whose job completed, failed for good or vanished): such a marker keeps reads away
 * from its target for good. It is cleared once this scan listed that target and judged every path of the user
 * (enqueueing whatever repair it needs, with markers of its own), so nothing the marker guarded goes unchecked.
 */
import { S3_TARGET } from '@cring/jobs';
import { isFileRepairJob, isStaleMarker, type PendingMarker } from './job-states.ts';
import type { ScanContext, UserScan } from './scan-context.ts';

export async function clearStaleMarkers(
  ctx: ScanContext,
  user: UserScan,
  markers: readonly PendingMarker[],
): Promise<void> {
  if (user.recent > 0 || user.errors > 0) return;
  const now = Date.now();
  for (const marker of markers) {
    if (!isFileRepairJob(marker.jobId) || !isStaleMarker(marker, now, ctx.pendingGraceMs)) continue;
    const checked =
      marker.target === S3_TARGET
        ? user.s3.state === 'listed'
        : user.listings.get(marker.target)?.state === 'listed';
    if (!checked) continue;
    if (!ctx.options.dryRun) await ctx.manifest.removePending(user.charmId, marker.target, marker.jobId);
    ctx.recorder.stats.staleMarkersCleared++;
    ctx.recorder.finding({
      charmId: user.charmId,
      target: marker.target,
      problem: `stale pending marker (job ${marker.status.state})`,
      action: ctx.options.dryRun ? 'would clear' : 'cleared',
      jobId: marker.jobId,
    });
  }
}
