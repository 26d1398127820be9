import { BackupChecksumError, BackupConflictError, type BackupStore } from '@cring/backup-store';
import type { DeleteJob, S3Job } from '@cring/jobs';
import { UnrecoverableError } from 'bullmq';
import { type JobContext, type JobOutcome, LOCK_WAIT_MS } from './job-context.ts';

// S3 jobs serialise among themselves on their own lock names, so a slow upload never holds up a user's write.
const s3LockName = (path: string) => `s3:${path}`;

/** Copies one acknowledged version to the bucket, streamed from a holder and checked against its sha256. */
export async function backupToS3(
  job: Extract<S3Job, { kind: 'backup' }>,
  store: BackupStore,
  ctx: JobContext,
): Promise<JobOutcome> {
  const lock = await ctx.manifest.lockPath(job.charmId, s3LockName(job.path), { waitMs: LOCK_WAIT_MS });
  try {
    const entry = await ctx.manifest.governing(job.charmId, job.path);
    if (entry?.kind !== 'file' || entry.path !== job.path || entry.version !== job.version) {
      return { outcome: 'dropped', reason: `version ${job.version} no longer current` };
    }
    const existing = await store.head(job.charmId, job.path);
    if (existing?.sha256 === job.sha256 && existing.size === job.size)
      return { outcome: 'dropped', reason: 'already backed up' };
    const problems: string[] = [];
    let unreachableSources = 0;
    for (const name of [...new Set([...entry.holders, ...job.sources])]) {
      const source = ctx.clientFor(name);
      if (!source) continue;
      let file: Awaited<ReturnType<typeof source.getFile>>;
      try {
        file = await source.getFile(job.charmId, job.path);
      } catch (err) {
        unreachableSources++;
        problems.push(`${name}: ${(err as Error).message}`);
        continue;
      }
      if (!file) {
        problems.push(`${name}: missing`);
        continue;
      }
      try {
        await store.put(job.charmId, job.path, {
          body: file.body,
          size: job.size,
          sha256: job.sha256,
          mode: job.mode,
          version: job.version,
        });
        return { outcome: 'applied', detail: `from ${name}` };
      } catch (err) {
        // The bucket refuses the key's shape (a file where a folder was): no retry or other source helps.
        if (err instanceof BackupConflictError) throw new UnrecoverableError(err.message);
        // Anything but a checksum mismatch is S3 itself failing: retry the job rather than other sources.
        if (!(err instanceof BackupChecksumError)) throw err;
        problems.push(`${name}: holds different bytes`);
      }
    }
    // S3 jobs do not hold the path lock, so a newer write may have replaced the bytes while they were read.
    const now = await ctx.manifest.governing(job.charmId, job.path);
    if (now?.version !== job.version)
      return { outcome: 'dropped', reason: `superseded by v${now?.version} while copying` };
    const reason = `no source could provide version ${job.version}: ${problems.join('; ') || 'no source configured'}`;
    // Every source answered and none has the bytes: retrying cannot help; the healer restores from S3 or reports.
    if (problems.length > 0 && unreachableSources === 0) throw new UnrecoverableError(reason);
    throw new Error(reason);
  } finally {
    await lock.release();
  }
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
