import { createRedisAccountBaseStore } from '@cring/accounts';
import { type AgentClient, createAgentClient } from '@cring/agent-protocol';
import type { BackupStore } from '@cring/backup-store';
import { type BackendClient, createBackendClient, type ServerKey } from '@cring/charm';
import {
  ACCOUNTS_QUEUE,
  type AccountSyncJob,
  type BackendJob,
  backendQueueName,
  QUEUE_PREFIX,
  S3_QUEUE,
  S3_TARGET,
  type S3Job,
} from '@cring/jobs';
import type { Manifest } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';
import { DelayedError, type Job, Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter, Histogram, type Registry } from 'prom-client';
import { createAccountSync } from './accounts/account-sync.ts';
import type { ReplicatorConfig } from './config.ts';
import { catchUpSeq, replayEncryptKey } from './jobs/account-state.ts';
import { applyDelete } from './jobs/delete.ts';
import type { JobContext, JobOutcome } from './jobs/job-context.ts';
import { createModTimeSender } from './jobs/mod-time.ts';
import { replicate } from './jobs/replicate.ts';
import { restoreFromS3 } from './jobs/restore.ts';
import { backupToS3, deleteFromS3 } from './jobs/s3.ts';

function processBackendJob(
  job: BackendJob,
  target: BackendClient,
  store: BackupStore,
  ctx: JobContext,
): Promise<JobOutcome> {
  switch (job.kind) {
    case 'replicate':
      return replicate(job, target, ctx);
    case 'delete':
      return applyDelete(job, target, ctx);
    case 'encrypt-key':
      return replayEncryptKey(job, target, ctx);
    case 'seq':
      return catchUpSeq(job, target, ctx);
    case 'restore':
      return restoreFromS3(job, target, store, ctx);
  }
}

/** Jobs that add bytes to their target: held while it is under its free-space reserve. */
const addsBytes = (job: BackendJob) => job.kind === 'replicate' || job.kind === 'restore';

/**
 * Whether a backend is under its free-space reserve, as its agent says (asked at most once per `cacheMs`). No
 * agent, or no answer, counts as room: the backend itself then refuses a write it cannot take, and the job retries.
 */
function createRoomCheck(agents: ReadonlyMap<string, AgentClient>, logger: Logger, cacheMs = 5_000) {
  const cache = new Map<string, { full: boolean; at: number }>();
  return async (backend: string): Promise<boolean> => {
    const agent = agents.get(backend);
    if (!agent) return false;
    const cached = cache.get(backend);
    if (cached && Date.now() - cached.at < cacheMs) return cached.full;
    let full = false;
    try {
      full = (await agent.diskSpace({ timeoutMs: 5_000 })).underReserve;
    } catch (err) {
      logger.debug({ backend, err: (err as Error).message }, 'no free-space answer; treating it as room');
    }
    cache.set(backend, { full, at: Date.now() });
    return full;
  };
}

function processS3Job(job: S3Job, store: BackupStore, ctx: JobContext): Promise<JobOutcome> {
  return job.kind === 'backup' ? backupToS3(job, store, ctx) : deleteFromS3(job, store, ctx);
}

/**
 * One BullMQ worker per served backend queue, plus the S3 queue. A job that applied or was dropped (superseded)
 * clears its pending marker; a failing one keeps it, so reads keep avoiding that backend until it catches up.
 */
export function startWorkers(options: {
  config: ReplicatorConfig;
  logger: Logger;
  connection: Redis;
  manifest: Manifest;
  key: ServerKey;
  store: BackupStore;
  metrics: Registry;
}) {
  const { config, logger, manifest } = options;
  const clients = new Map(
    config.backends.map((backend) => [
      backend.name,
      createBackendClient({ backend, key: options.key, issuer: config.issuer }),
    ]),
  );
  const agents = new Map(
    config.agents.map((agent) => [
      agent.name,
      createAgentClient({ backend: agent.name, url: agent.url, key: options.key, issuer: config.issuer }),
    ]),
  );
  const ctx: JobContext = {
    manifest,
    clientFor: (name) => clients.get(name),
    modTimes: createModTimeSender((name) => agents.get(name)),
    auth: { key: options.key, issuer: config.issuer },
    logger,
  };

  const isFull = createRoomCheck(agents, logger);
  const workers: Worker[] = [];
  const jobOutcomes = new Counter({
    name: 'cring_jobs_total',
    help: 'Jobs finished, by queue and outcome (applied, dropped, retried, failed)',
    labelNames: ['queue', 'outcome'],
    registers: [options.metrics],
  });
  const jobSeconds = new Histogram({
    name: 'cring_job_duration_seconds',
    help: 'Time to process a job, by queue',
    labelNames: ['queue'],
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600],
    registers: [options.metrics],
  });
  const start = <T extends { charmId: string }>(
    queue: string,
    target: string,
    run: (data: T) => Promise<JobOutcome>,
    /** Resolves true when the job must wait (moved back to delayed, no attempt spent, marker kept). */
    hold: (data: T) => Promise<boolean> = async () => false,
  ) => {
    const worker = new Worker<T, JobOutcome>(
      queue,
      async (job: Job<T, JobOutcome>, token?: string) => {
        const log = logger.child({ queue, jobId: job.id, attempt: job.attemptsMade + 1 });
        if (await hold(job.data)) {
          jobOutcomes.inc({ queue, outcome: 'held' });
          log.info({ retryMs: config.fullBackendRetryMs }, 'target under its free-space reserve; job held');
          await job.moveToDelayed(Date.now() + config.fullBackendRetryMs, token);
          throw new DelayedError();
        }
        const timer = jobSeconds.startTimer({ queue });
        const outcome = await run(job.data).finally(timer);
        jobOutcomes.inc({ queue, outcome: outcome.outcome });
        await manifest.removePending(job.data.charmId, target, job.id as string);
        log.info(outcome, outcome.outcome === 'applied' ? 'job applied' : 'job dropped');
        return outcome;
      },
      { connection: options.connection, prefix: QUEUE_PREFIX, concurrency: config.concurrency },
    );
    worker.on('failed', (job, err) => {
      const final = job
        ? job.attemptsMade >= (job.opts.attempts ?? 1) || err.name === 'UnrecoverableError'
        : false;
      jobOutcomes.inc({ queue, outcome: final ? 'failed' : 'retried' });
      logger[final ? 'error' : 'warn'](
        { queue, jobId: job?.id, attempt: job?.attemptsMade, err: err.message },
        final ? 'job failed for good; the healer will repair' : 'job failed, will retry',
      );
    });
    worker.on('error', (err) => logger.warn({ queue, err: err.message }, 'worker error'));
    workers.push(worker);
  };

  for (const name of config.servedBackends) {
    const target = clients.get(name) as BackendClient;
    start<BackendJob>(
      backendQueueName(name),
      name,
      (job) => processBackendJob(job, target, options.store, ctx),
      async (job) => addsBytes(job) && (await isFull(name)),
    );
  }
  if (config.serveS3) start<S3Job>(S3_QUEUE, S3_TARGET, (job) => processS3Job(job, options.store, ctx));

  // Account sync needs every backend's account rows: only a replicator configured with every agent runs it.
  let accountsQueue: Queue | undefined;
  if (config.agents.length > 0) {
    const sync = createAccountSync({
      backends: [...agents.values()],
      store: createRedisAccountBaseStore(options.connection),
      redis: options.connection,
      backup: options.store,
      backupIntervalMs: config.accountBackupIntervalMs,
      logger: logger.child({ component: 'accounts' }),
    });
    const worker = new Worker<AccountSyncJob>(ACCOUNTS_QUEUE, (job) => sync.run(job.data), {
      connection: options.connection,
      prefix: QUEUE_PREFIX,
      concurrency: 1,
    });
    worker.on('failed', (job, err) =>
      logger.warn({ queue: ACCOUNTS_QUEUE, jobId: job?.id, err: err.message }, 'account sync failed'),
    );
    workers.push(worker);
    accountsQueue = new Queue(ACCOUNTS_QUEUE, { connection: options.connection, prefix: QUEUE_PREFIX });
    void accountsQueue
      .upsertJobScheduler(
        'account-sync-round',
        { every: config.accountSyncIntervalMs },
        {
          name: 'account-sync',
          data: { kind: 'account-sync' },
          opts: { removeOnComplete: 100, removeOnFail: 100 },
        },
      )
      .catch((err) => logger.error({ err }, 'could not schedule account sync rounds'));
  }

  return {
    workers,
    /** Finishes in-flight jobs, then stops. Safe to call twice. */
    async close() {
      await Promise.all(workers.map((worker) => worker.close()));
      await accountsQueue?.close();
      for (const client of clients.values()) client.close();
    },
  };
}
