/**
 * Table row T1 (a tombstone past its retention): forgotten once nothing it covers is left. Every backend and the
 * bucket were listed, the scan met no error, none holds a copy the tombstone governs, and no delete job of it is
 * still live. The retention outlasts the jobs' retry horizon, so a backend that missed the delete has been
 * retried (or seen by a scan) long before.
 */
import { jobIdOf } from '@cring/jobs';
import { liveJobFor } from './repairs.ts';
import type { ScanContext, UserScan } from './scan-context.ts';

export async function collectTombstones(ctx: ScanContext, user: UserScan): Promise<void> {
  if (user.errors > 0 || user.reachable.size !== ctx.backendNames.length || user.s3.state !== 'listed')
    return;
  const now = Date.now();
  const alive = [...user.alive.values()].flat();
  for (const [path, entry] of user.entries) {
    if (entry.kind !== 'tombstone' || now - entry.atMs <= ctx.tombstoneRetentionMs) continue;
    if (user.covered.has(`${path}|${entry.version}`)) continue;
    const deleteJob = { kind: 'delete' as const, charmId: user.charmId, path, version: entry.version };
    if (liveJobFor(jobIdOf(deleteJob), alive)) continue;
    if (ctx.options.dryRun || (await ctx.manifest.removeTombstone(user.charmId, path, entry.version))) {
      ctx.recorder.stats.tombstonesCollected++;
    }
  }
}
