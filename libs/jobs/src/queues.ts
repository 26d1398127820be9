import { createHash } from 'node:crypto';
import type { Manifest } from '@cring/manifest';
import { Job, type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { BackendJob, S3Job } from './payloads.ts';

/** BullMQ key prefix. Braces make it a hash tag: every queue key lands in one Redis Cluster slot. */
export const QUEUE_PREFIX = '{cring}';
export const S3_QUEUE = 's3-backup';
export const HEALER_QUEUE = 'healer';
/** What the healer keeps in Redis between runs (read by `cring status` and the healer's metrics too). */
export const healerKeys = {
  /** JSON {scanId, lastUser, atMs}: the last user an unfinished full scan finished (users go in sorted order). */
  cursor: () => 'cring:healer:cursor',
  /** JSON: the last scan's report (findings capped). */
  lastResult: () => 'cring:healer:last-result',
};
/** Account sync rounds: scheduled full rounds, and on-demand rounds for a user the gateway has not seen. */
export const ACCOUNTS_QUEUE = 'accounts';
/** One queue per target backend, so a dead backend only stalls its own queue. */
export const backendQueueName = (backend: string) => `backend-${backend}`;

const shortHash = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);

/**
 * Deterministic job ids: the same change for the same target collapses into one job. A user's version number
 * already identifies a file change; account-state jobs are keyed by what they carry.
 */
export function jobIdOf(job: BackendJob | S3Job): string {
  switch (job.kind) {
    case 'replicate':
    case 'backup':
    case 'delete':
    case 'restore':
      return `${job.kind}-${job.charmId}-${job.version}`;
    case 'encrypt-key':
      return `encrypt-key-${job.charmId}-${job.encryptKey.id}-${shortHash(job.encryptKey.public_key)}`;
    case 'seq':
      return `seq-${job.charmId}-${shortHash(job.name)}-${job.atLeast}`;
  }
}

/** Retries back off exponentially (2 s … ~68 min, about 2.3 h in all); failures stay for Bull Board and the healer. */
export const DEFAULT_JOB_OPTIONS: JobsOptions = {
  attempts: 12,
  backoff: { type: 'exponential', delay: 2000 },
  removeOnComplete: { age: 24 * 3600, count: 10_000 },
  removeOnFail: false,
};

/** The pending marker for S3 in the manifest (S3 is not a backend, but listings never read from it either). */
export const S3_TARGET = 's3';

/**
 * The lock S3 copies of a path take (backups, S3 deletes): they serialise among themselves on their own names,
 * so a slow upload to S3 never holds up a user's write.
 */
export const s3LockName = (path: string) => `s3:${path}`;

/** The queue of a pending marker's target: a backend's, or the S3 queue. */
const queueOfTarget = (target: string) => (target === S3_TARGET ? S3_QUEUE : backendQueueName(target));

/** Producer side: adds jobs and records them as pending for their target in the manifest first. */
export function createJobQueues(options: {
  connection: Redis;
  manifest: Manifest;
  backends: readonly string[];
}) {
  const queues = new Map<string, Queue>();
  const queueFor = (name: string) => {
    let queue = queues.get(name);
    if (!queue) {
      queue = new Queue(name, {
        connection: options.connection,
        prefix: QUEUE_PREFIX,
        defaultJobOptions: DEFAULT_JOB_OPTIONS,
      });
      queues.set(name, queue);
    }
    return queue;
  };
  for (const backend of options.backends) queueFor(backendQueueName(backend));
  queueFor(S3_QUEUE);
  // Not produced here, but listed for Bull Board and status: account sync rounds and healer scans.
  queueFor(ACCOUNTS_QUEUE);
  queueFor(HEALER_QUEUE);

  let ready: Promise<unknown> | undefined;
  /** A job, its target queue and pending marker, and its deterministic id. */
  const planned = (add: JobAdd) => {
    const [target, queue, job] =
      'backend' in add
        ? [add.backend, backendQueueName(add.backend), add.job]
        : [S3_TARGET, S3_QUEUE, add.s3];
    return { target, queue: queueFor(queue), job, jobId: jobIdOf(job) };
  };

  return {
    /** Resolves once every queue's scripts are loaded on the connection (needed before `send`). */
    ready(): Promise<unknown> {
      ready ??= Promise.all([...queues.values()].map((queue) => queue.waitUntilReady())).catch((err) => {
        ready = undefined; // asked again next time
        throw err;
      });
      return ready;
    },
    /**
     * Sends each job, and first its pending marker (as the enqueue functions do), on the connection at once
     * without waiting for answers, so that commands the caller sends next follow them in order; returns the
     * answers (a refused job rejects). Call `ready()` first.
     */
    send(adds: readonly JobAdd[]): Promise<unknown>[] {
      const connection = options.connection as unknown as Record<
        string,
        ((a: unknown[]) => Promise<unknown>) | undefined
      >;
      // What BullMQ's add needs of a client (runCommand): its script, sent now on our connection.
      const bullmqClient = {
        runCommand(name: string, args: unknown[]) {
          const command = connection[name];
          if (!command) throw new Error(`BullMQ's ${name} script is not loaded: await ready() first`);
          return command.call(options.connection, args);
        },
      } as unknown as Parameters<Job['addJob']>[0];
      return adds.flatMap((add) => {
        const { target, queue, job, jobId } = planned(add);
        return [
          options.manifest.addPending(job.charmId, target, jobId),
          // As Queue.add does, without its awaits before the script goes out.
          new Job(
            queue,
            job.kind,
            job,
            {
              ...DEFAULT_JOB_OPTIONS,
              jobId,
              ...(add.delayMs ? { delay: add.delayMs } : {}),
            },
            jobId,
          ).addJob(bullmqClient),
        ];
      });
    },
    /** `idSuffix` makes a repair distinct from the original job of the same change (which may have completed). */
    async enqueueForBackend(
      backend: string,
      job: BackendJob,
      extra: { idSuffix?: string } = {},
    ): Promise<string> {
      const jobId = extra.idSuffix ? `${jobIdOf(job)}-${extra.idSuffix}` : jobIdOf(job);
      await options.manifest.addPending(job.charmId, backend, jobId);
      await queueFor(backendQueueName(backend)).add(job.kind, job, { jobId });
      return jobId;
    },
    async enqueueForS3(job: S3Job, extra: { idSuffix?: string } = {}): Promise<string> {
      const jobId = extra.idSuffix ? `${jobIdOf(job)}-${extra.idSuffix}` : jobIdOf(job);
      await options.manifest.addPending(job.charmId, S3_TARGET, jobId);
      await queueFor(S3_QUEUE).add(job.kind, job, { jobId });
      return jobId;
    },
    /**
     * Removes a job of `target` (a backend, or S3_TARGET) that has not started: a delayed fallback made moot, its
     * copy done. Resolves false when it could not be removed (already running or gone): its marker is then the
     * job's to clear.
     */
    async cancel(target: string, jobId: string): Promise<boolean> {
      return (await queueFor(queueOfTarget(target)).remove(jobId)) === 1;
    },
    /** Runs a delayed job of `target` now (its copy failed: the replicator takes over at once, with its retries). */
    async promote(target: string, jobId: string): Promise<void> {
      const job = await Job.fromId(queueFor(queueOfTarget(target)), jobId);
      if (job && (await job.isDelayed())) await job.promote();
    },
    /** Every queue, for Bull Board and status. */
    all(): Queue[] {
      return [...queues.values()];
    },
    async close(): Promise<void> {
      await Promise.all([...queues.values()].map((queue) => queue.close()));
    },
  };
}

export type JobQueues = ReturnType<typeof createJobQueues>;

/**
 * A job for a backend's queue or for the S3 queue. `delayMs`: the job waits that long first (a fallback for a copy
 * its producer is making itself, cancelled once that copy is recorded).
 */
export type JobAdd = { backend: string; job: BackendJob; delayMs?: number } | { s3: S3Job; delayMs?: number };

/** The errors among the answers of `send` ([error, value] each, in order). */
export function failedAdds(answers: readonly [Error | null, unknown][]): Error[] {
  return answers.flatMap(([err]) => (err ? [err] : []));
}
