import { type BackendClient, ChecksumMismatchError } from '@cring/charm';
import type { ReplicateJob } from '@cring/jobs';
import { UnrecoverableError } from 'bullmq';
import { type JobContext, type JobOutcome, LOCK_WAIT_MS } from './job-context.ts';

/**
 * Copies one acknowledged file version to `target`: applies only while that version still governs the path, reads
 * it from a backend that holds it and checks sha256 on the way (a mismatch aborts the upload before the backend
 * replaces anything), then records the target as a holder.
 */
export async function replicate(
  job: ReplicateJob,
  target: BackendClient,
  ctx: JobContext,
): Promise<JobOutcome> {
  const lock = await ctx.manifest.lockPath(job.charmId, job.path, { waitMs: LOCK_WAIT_MS });
  try {
    const entry = await ctx.manifest.governing(job.charmId, job.path);
    if (entry?.kind !== 'file' || entry.path !== job.path || entry.version !== job.version) {
      return {
        outcome: 'dropped',
        reason: `version ${job.version} no longer current (${entry ? `${entry.kind} v${entry.version}` : 'no entry'})`,
      };
    }
    const sources = [...new Set([...entry.holders, ...job.sources])].filter(
      (name) => name !== target.backend.name,
    );
    const problems: string[] = [];
    let unreachableSources = 0;
    for (const name of sources) {
      const source = ctx.clientFor(name);
      if (!source) continue;
      let file: Awaited<ReturnType<BackendClient['getFile']>>;
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
        await target.putFile(job.charmId, job.path, {
          body: file.body,
          size: job.size,
          mode: job.mode,
          expectSha256: job.sha256,
        });
      } catch (err) {
        if (!(err instanceof ChecksumMismatchError)) throw err; // the target failed: retry the job
        problems.push(`${name}: holds different bytes`);
        continue;
      }
      await ctx.manifest.addHolder(job.charmId, job.path, job.version, target.backend.name);
      return { outcome: 'applied', detail: `from ${name}` };
    }
    const reason = `no source could provide version ${job.version}: ${problems.join('; ') || 'no source configured'}`;
    // Every source answered and none has the bytes: retrying cannot help; the healer restores from S3.
    if (problems.length > 0 && unreachableSources === 0) throw new UnrecoverableError(reason);
    throw new Error(reason);
  } finally {
    await lock.release();
  }
}
