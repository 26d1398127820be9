import type { BackupStore } from '@cring/backup-store';
import { type BackendClient, ChecksumMismatchError } from '@cring/charm';
import type { RestoreJob } from '@cring/jobs';
import { UnrecoverableError } from 'bullmq';
import { fencedBody, type JobContext, type JobOutcome } from './job-context.ts';
import { carryModTime } from './mod-time.ts';
import { lockCurrentVersion } from './sources.ts';

/**
 * Copies one file version from the S3 backup to `target` (the healer asks for it when no backend holds the
 * version any more): applies only while that version still governs the path, streams the object and checks its
 * sha256 and size on the way (a mismatch aborts the upload before the backend replaces anything), then records the
 * target as a holder.
 */
export async function restoreFromS3(
  job: RestoreJob,
  target: BackendClient,
  store: BackupStore,
  ctx: JobContext,
): Promise<JobOutcome> {
  const { lock, current } = await lockCurrentVersion(job, ctx);
  try {
    if ('dropped' in current) return current.dropped;
    const object = await store.get(job.charmId, job.path);
    if (!object) throw new UnrecoverableError(`the backup has no object for ${job.path}`);
    if (object.sha256 !== undefined && object.sha256 !== job.sha256) {
      object.body.destroy();
      throw new UnrecoverableError(
        `the backup of ${job.path} holds sha256 ${object.sha256}, not version ${job.version}'s ${job.sha256}`,
      );
    }
    try {
      await target.putFile(job.charmId, job.path, {
        body: await fencedBody(lock, object.body),
        size: job.size,
        mode: job.mode,
        expectSha256: job.sha256,
      });
    } catch (err) {
      // The object's bytes are not the version's: no retry can fix that.
      if (err instanceof ChecksumMismatchError) throw new UnrecoverableError(err.message);
      throw err; // the target failed: retry the job
    }
    await carryModTime(ctx, target.backend.name, { ...job, atMs: current.entry.atMs });
    await ctx.manifest.addHolder(job.charmId, job.path, job.version, target.backend.name, lock);
    return { outcome: 'applied', detail: 'from the S3 backup' };
  } finally {
    await lock.release();
  }
}
