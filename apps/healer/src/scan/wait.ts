import { setTimeout as sleep } from 'node:timers/promises';
import type { JobStates } from './job-states.ts';
import type { TrackedJob } from './repairs.ts';

export interface WaitResult {
  /** Completed: applied, or dropped because a newer change superseded it (or it was already done). */
  completed: number;
  applied: number;
  dropped: number;
  failed: { job: TrackedJob; reason: string }[];
  /** Still queued or running when the wait timed out (or was interrupted). */
  pending: number;
  seconds: number;
  timedOut: boolean;
}

// Jobs of one queue finish roughly in order: polling the oldest first, a round can stop at the first live ones.
const POLL_BATCH = 500;

/** Polls the tracked jobs until each completed or failed for good, or until the timeout. */
export async function waitForRepairs(
  jobs: readonly TrackedJob[],
  jobStates: JobStates,
  options: {
    timeoutMs: number;
    pollMs?: number;
    signal?: AbortSignal;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<WaitResult> {
  const started = performance.now();
  const unique = new Map(jobs.map((job) => [`${job.target}|${job.jobId}`, job]));
  let outstanding = [...unique.values()];
  const result: WaitResult = {
    completed: 0,
    applied: 0,
    dropped: 0,
    failed: [],
    pending: 0,
    seconds: 0,
    timedOut: false,
  };
  const total = outstanding.length;
  while (outstanding.length > 0) {
    const batch = outstanding.slice(0, POLL_BATCH);
    const stillLive: TrackedJob[] = [];
    for (const job of batch) {
      const status = await jobStates.status(job.target, job.jobId);
      if (status.state === 'alive') {
        stillLive.push(job);
      } else if (status.state === 'completed') {
        result.completed++;
        if (status.outcome === 'dropped') result.dropped++;
        else result.applied++;
      } else if (status.state === 'failed') {
        result.failed.push({ job, reason: status.reason });
      } else if (await jobStates.markerSet(job.charmId, job.target, job.jobId)) {
        result.failed.push({ job, reason: 'the job disappeared from its queue before it ran' });
      } else {
        result.completed++; // removed after completing (the worker clears the marker only then)
        result.applied++;
      }
    }
    outstanding = [...stillLive, ...outstanding.slice(POLL_BATCH)];
    options.onProgress?.(total - outstanding.length, total);
    if (outstanding.length === 0) break;
    if (performance.now() - started >= options.timeoutMs) {
      result.timedOut = true;
      break;
    }
    if (options.signal?.aborted) break;
    await sleep(options.pollMs ?? 500);
  }
  result.pending = outstanding.length;
  result.seconds = (performance.now() - started) / 1000;
  return result;
}
