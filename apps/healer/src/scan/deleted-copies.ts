/**
 * Table row P5 (a tombstone governs, and a copy it covers is still somewhere): a tombstone always wins. Each backend (and
 * the bucket) holding a copy it covers gets the tombstone's delete job again, once per target and tombstone in
 * a scan (a directory's tombstone covers many paths, and its delete job removes them all).
 */
import { S3_TARGET } from '@cring/jobs';
import type { Tombstone } from '@cring/manifest';
import type { Copy, S3State } from './plan.ts';
import { countRepair, type ScanContext, type UserScan } from './scan-context.ts';

export async function removeDeletedCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  tombstone: Tombstone & { path: string },
  copies: ReadonlyMap<string, Copy>,
  s3: S3State,
): Promise<void> {
  const { charmId } = user;
  const job = { kind: 'delete' as const, charmId, path: tombstone.path, version: tombstone.version };
  const detail = `deleted at v${tombstone.version}${tombstone.path === path ? '' : ` with ${tombstone.path}`}`;
  const targets = [...copies.keys(), ...(s3.state === 'present' ? [S3_TARGET] : [])];
  for (const target of targets) {
    ctx.recorder.stats.deletedCopies++;
    const key = `${target}|${tombstone.path}|${tombstone.version}`;
    let jobId: string | undefined;
    if (!user.deleteJobs.has(key)) {
      user.deleteJobs.add(key);
      const alive = user.alive.get(target) ?? [];
      const tracked =
        target === S3_TARGET
          ? await ctx.repairs.forS3(job, alive)
          : await ctx.repairs.forBackend(target, job, alive);
      countRepair(ctx, tracked);
      jobId = tracked.jobId;
    }
    ctx.recorder.finding({
      charmId,
      path,
      target,
      problem: 'copy of a deleted path',
      action: 'delete',
      detail,
      ...(jobId ? { jobId } : {}),
    });
  }
}
