import { type BackendClient, ChecksumMismatchError } from '@cring/charm';
import type { ReplicateJob } from '@cring/jobs';
import { fencedBody, type JobContext, type JobOutcome } from './job-context.ts';
import { carryModTime } from './mod-time.ts';
import { copyFromSources, lockCurrentVersion } from './sources.ts';

/**
 * Copies one acknowledged file version to `target`: applies only while that version still governs the path, reads
 * it from a backend that holds it and checks sha256 on the way (a mismatch aborts the upload before the backend
 * replaces anything), then records the target as a holder. Every source lacking the bytes fails the job for good:
 * the healer restores from S3.
 */
export async function replicate(
  job: ReplicateJob,
  target: BackendClient,
  ctx: JobContext,
): Promise<JobOutcome> {
  const { lock, current } = await lockCurrentVersion(job, ctx);
  try {
    if ('dropped' in current) return current.dropped;
    let lastModified: string | undefined;
    const from = await copyFromSources({
      job,
      ctx,
      sources: [...new Set([...current.entry.holders, ...job.sources])].filter(
        (name) => name !== target.backend.name,
      ),
      write: async (body, source) => {
        lastModified = source.lastModified;
        return target.putFile(job.charmId, job.path, {
          body: await fencedBody(lock, body),
          size: job.size,
          mode: job.mode,
          expectSha256: job.sha256,
        });
      },
      isMismatch: (err) => err instanceof ChecksumMismatchError,
    });
    await carryModTime(ctx, target.backend.name, { ...job, lastModified, atMs: current.entry.atMs });
    await ctx.manifest.addHolderAndRelease(job.charmId, job.path, job.version, target.backend.name, lock);
    return { outcome: 'applied', detail: `from ${from}` };
  } finally {
    await lock.release(); // a no-op after addHolderAndRelease
  }
}
