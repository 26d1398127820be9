/**
 * Where a repair job stands, looked up in its BullMQ queue: the healer decides from it whether a change is
 * already being applied, whether a pending marker is stale, and whether a repair it enqueued has finished.
 */
import { backendQueueName, QUEUE_PREFIX, S3_QUEUE, S3_TARGET } from '@cring/jobs';
import { type Manifest, manifestKeys } from '@cring/manifest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';

export type JobStatus =
  /** Waiting, delayed (a retry included), active: it will still run. */
  | { state: 'alive' }
  | { state: 'completed'; outcome?: string; detail?: string }
  /** Failed for good: no retry is left, or it failed as unrecoverable. */
  | { state: 'failed'; reason: string }
  /** Not in its queue (removed, evicted, or the queues were lost). */
  | { state: 'missing' };

export interface JobStates {
  status(target: string, jobId: string): Promise<JobStatus>;
  /** True while the job's pending marker is set (the worker clears it when the job applied or was dropped). */
  markerSet(charmId: string, target: string, jobId: string): Promise<boolean>;
  close(): Promise<void>;
}

export const queueNameOf = (target: string) => (target === S3_TARGET ? S3_QUEUE : backendQueueName(target));

export function createJobStates(connection: Redis): JobStates {
  const queues = new Map<string, Queue>();
  const queueOf = (target: string) => {
    const name = queueNameOf(target);
    let queue = queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection, prefix: QUEUE_PREFIX });
      queues.set(name, queue);
    }
    return queue;
  };
  return {
    async status(target, jobId) {
      const job = await queueOf(target).getJob(jobId);
      if (!job) return { state: 'missing' };
      const state = await job.getState();
      if (state === 'completed') {
        const value = job.returnvalue as { outcome?: string; detail?: string; reason?: string } | null;
        return { state: 'completed', outcome: value?.outcome, detail: value?.detail ?? value?.reason };
      }
      if (state === 'failed') return { state: 'failed', reason: job.failedReason ?? 'failed' };
      if (state === 'unknown') return { state: 'missing' };
      return { state: 'alive' };
    },
    async markerSet(charmId, target, jobId) {
      return (await connection.hexists(manifestKeys.pending(charmId), `${target}|${jobId}`)) === 1;
    },
    async close() {
      await Promise.all([...queues.values()].map((queue) => queue.close()));
    },
  };
}

/** The jobs whose changes the scan itself checks and repairs (file versions and tombstones). */
export const isFileRepairJob = (jobId: string) => /^(replicate|restore|delete|backup)-/.test(jobId);

export interface PendingMarker {
  target: string;
  jobId: string;
  sinceMs: number;
  status: JobStatus;
}

export async function readPendingMarkers(
  manifest: Manifest,
  jobStates: JobStates,
  charmId: string,
): Promise<PendingMarker[]> {
  const markers = await manifest.pendingJobs(charmId);
  return await Promise.all(
    markers.map(async (marker) => ({
      target: marker.backend,
      jobId: marker.jobId,
      sinceMs: marker.sinceMs,
      status: await jobStates.status(marker.backend, marker.jobId),
    })),
  );
}

/**
 * A marker no job will ever clear: its job completed (the worker died before clearing it), failed for good, or
 * is gone. A missing job only counts after a grace period: the marker is written just before the job is added.
 */
export function isStaleMarker(marker: PendingMarker, nowMs: number, graceMs: number): boolean {
  if (marker.status.state === 'completed' || marker.status.state === 'failed') return true;
  return marker.status.state === 'missing' && nowMs - marker.sinceMs >= graceMs;
}
