/**
 * Enqueues repairs through the pipeline's own queues (the replicator applies them, re-checking the manifest under
 * the path lock). A change that already has a live job for the same target is not enqueued again; that job is
 * tracked instead. Repair job ids carry the scan's suffix, so a job of the same change that completed or failed
 * earlier does not swallow the new one.
 */
import { type BackendJob, type JobQueues, jobIdOf, S3_TARGET, type S3Job } from '@cring/jobs';

export interface TrackedJob {
  target: string;
  jobId: string;
  charmId: string;
  path: string;
  kind: string;
  /** A live job that was already queued (by the gateway, a read repair or an earlier scan). */
  existing: boolean;
}

export interface Repairs {
  /** `alive`: job ids with a live job for this target and user (from the pending markers). */
  forBackend(
    target: string,
    job: BackendJob & { path: string },
    alive: readonly string[],
  ): Promise<TrackedJob>;
  forS3(job: S3Job, alive: readonly string[]): Promise<TrackedJob>;
  readonly tracked: readonly TrackedJob[];
}

/** The live job for the same change (same kind, user and version), if any. */
export function liveJobFor(baseJobId: string, alive: readonly string[]): string | undefined {
  return alive.find((id) => id === baseJobId || id.startsWith(`${baseJobId}-`));
}

export function createRepairs(options: { queues: JobQueues; idSuffix: string; dryRun: boolean }): Repairs {
  const tracked: TrackedJob[] = [];
  const track = (job: TrackedJob) => {
    if (!options.dryRun) tracked.push(job);
    return job;
  };
  return {
    tracked,
    async forBackend(target, job, alive) {
      const base = jobIdOf(job);
      const describe = { target, charmId: job.charmId, path: job.path, kind: job.kind };
      const live = liveJobFor(base, alive);
      if (live) return track({ ...describe, jobId: live, existing: true });
      const jobId = options.dryRun
        ? `${base}-${options.idSuffix}`
        : await options.queues.enqueueForBackend(target, job, { idSuffix: options.idSuffix });
      return track({ ...describe, jobId, existing: false });
    },
    async forS3(job, alive) {
      const base = jobIdOf(job);
      const describe = { target: S3_TARGET, charmId: job.charmId, path: job.path, kind: `s3-${job.kind}` };
      const live = liveJobFor(base, alive);
      if (live) return track({ ...describe, jobId: live, existing: true });
      const jobId = options.dryRun
        ? `${base}-${options.idSuffix}`
        : await options.queues.enqueueForS3(job, { idSuffix: options.idSuffix });
      return track({ ...describe, jobId, existing: false });
    },
  };
}
