import { BackupChecksumError, BackupConflictError, type BackupStore } from '@cring/backup-store';
import { type DeleteJob, type S3Job, s3LockName } from '@cring/jobs';
import { LockTimeoutError } from '@cring/manifest';
import { UnrecoverableError } from 'bullmq';
import { type JobContext, type JobOutcome, LOCK_WAIT_MS } from './job-context.ts';
import { copyFromSources, lockCurrentVersion } from './sources.ts';

// Below this size, uploading again (a retried job) costs less than the HEAD that could find it already there.
const HEAD_FIRST_ABOVE_BYTES = 1024 * 1024;

/** Copies one acknowledged version to the bucket, streamed from a holder and checked against its sha256. */
export async function backupToS3(
  job: Extract<S3Job, { kind: 'backup' }>,
  store: BackupStore,
  ctx: JobContext,
): Promise<JobOutcome> {
  const { lock, current } = await lockCurrentVersion(job, ctx, s3LockName(job.path));
  try {
    if ('dropped' in current) return current.dropped;
    if (job.size > HEAD_FIRST_ABOVE_BYTES) {
      const existing = await store.head(job.charmId, job.path);
      if (existing?.sha256 === job.sha256 && existing.size === job.size) {
        return { outcome: 'dropped', reason: 'already backed up' };
      }
    }
    try {
      const from = await copyFromSources({
        job,
        ctx,
        sources: [...new Set([...current.entry.holders, ...job.sources])],
        write: async (body) => {
          try {
            await store.put(job.charmId, job.path, {
              body,
              size: job.size,
              sha256: job.sha256,
              mode: job.mode,
              version: job.version,
            });
          } catch (err) {
            // The bucket refuses the key's shape (a file where a folder was): no retry or other source helps.
            if (err instanceof BackupConflictError) throw new UnrecoverableError(err.message);
            throw err;
          }
        },
        isMismatch: (err) => err instanceof BackupChecksumError,
      });
      return { outcome: 'applied', detail: `from ${from}` };
    } catch (err) {
      // S3 jobs do not hold the path lock: sources holding other bytes or none may be an overwrite or a delete
      // between its backends and its commit, not damage. Retried (then superseded, or rolled back and copyable).
      if (err instanceof UnrecoverableError && (await changeInFlight(job, ctx)))
        throw new Error(`${err.message}; a change of the path is in flight, retrying`);
      // Or a newer write replaced the bytes while they were read.
      const now = await ctx.manifest.governing(job.charmId, job.path);
      if (now?.version !== job.version)
        return { outcome: 'dropped', reason: `superseded by v${now?.version} while copying` };
      throw err;
    }
  } finally {
    await lock.release();
  }
}

/** Whether a write or delete holds the path's lock now (a lock is taken and given back at once to find out). */
async function changeInFlight(job: { charmId: string; path: string }, ctx: JobContext): Promise<boolean> {
  let lock: Awaited<ReturnType<JobContext['manifest']['lockPath']>>;
  try {
    lock = await ctx.manifest.lockPath(job.charmId, job.path, { waitMs: 0 });
  } catch (err) {
    if (err instanceof LockTimeoutError) return true;
    throw err;
  }
  await lock.release();
  return false;
}

/** Removes what a tombstone covers from the bucket, keeping files written below it afterwards. */
export async function deleteFromS3(job: DeleteJob, store: BackupStore, ctx: JobContext): Promise<JobOutcome> {
  const lock = await ctx.manifest.lockPath(job.charmId, s3LockName(job.path), { waitMs: LOCK_WAIT_MS });
  try {
    const entry = await ctx.manifest.entry(job.charmId, job.path);
    if (entry?.kind !== 'tombstone' || entry.version !== job.version) {
      return { outcome: 'dropped', reason: `tombstone v${job.version} superseded` };
    }
    const newer = new Set<string>();
    for (const [path, e] of await ctx.manifest.entriesWithin(job.charmId, job.path)) {
      if (e.kind === 'file' && e.version > job.version) newer.add(path);
    }
    const deleted = await store.deleteWithin(job.charmId, job.path, (path) => newer.has(path));
    return { outcome: 'applied', detail: `${deleted} objects` };
  } finally {
    await lock.release();
  }
}
