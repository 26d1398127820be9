import { type BackendClient, BackendHttpError, isWithin } from '@cring/charm';
import type { DeleteJob } from '@cring/jobs';
import { type JobContext, type JobOutcome, LOCK_WAIT_MS } from './job-context.ts';

/**
 * Applies a tombstone on `target`: a recursive DELETE of the path, unless files were written below it after the
 * delete (their versions are newer), in which case only the target's other files below the path are deleted.
 */
export async function applyDelete(
  job: DeleteJob,
  target: BackendClient,
  ctx: JobContext,
): Promise<JobOutcome> {
  const lock = await ctx.manifest.lockPath(job.charmId, job.path, { waitMs: LOCK_WAIT_MS });
  try {
    const entry = await ctx.manifest.entry(job.charmId, job.path);
    if (entry?.kind !== 'tombstone' || entry.version !== job.version) {
      return {
        outcome: 'dropped',
        reason: `tombstone v${job.version} superseded (${entry ? `${entry.kind} v${entry.version}` : 'no entry'})`,
      };
    }
    const newer = new Set<string>();
    for (const [path, e] of await ctx.manifest.entriesWithin(job.charmId, job.path)) {
      if (e.kind === 'file' && e.version > job.version) newer.add(path);
    }
    try {
      await lock.assertHeld(); // a worker frozen past the TTL must not delete under a newer writer
      if (newer.size === 0) {
        await target.deletePath(job.charmId, job.path);
      } else {
        for await (const file of target.walkFiles(job.charmId, job.path)) {
          if (!newer.has(file.path) && isWithin(file.path, job.path)) {
            await lock.assertHeld();
            await target.deletePath(job.charmId, file.path);
          }
        }
      }
    } catch (err) {
      // A backend that never knew the user has nothing to delete.
      if (!(err instanceof BackendHttpError && err.status === 404 && err.body.includes('missing user')))
        throw err;
    }
    await ctx.manifest.addHolder(job.charmId, job.path, job.version, target.backend.name, lock);
    return {
      outcome: 'applied',
      detail: newer.size > 0 ? `kept ${newer.size} newer files` : 'recursive delete',
    };
  } finally {
    await lock.release();
  }
}
