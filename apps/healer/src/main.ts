// The healer worker: the same scan as `healer --scan`, on a schedule (a BullMQ job scheduler on the healer
// queue), without waiting for the repairs. Each run's report is the job's return value (Bull Board shows it),
// the last one is kept in Redis, and it is logged.
import { type BackupStore, guardBucketVersioning, pruneNoncurrentVersions } from '@cring/backup-store';
import { connectRedis } from '@cring/config';
import { HEALER_QUEUE, QUEUE_PREFIX } from '@cring/jobs';
import { createLogger, createMetricsRegistry, installShutdown, serveMetrics } from '@cring/service-runtime';
import { type Job, Queue, Worker } from 'bullmq';
import { loadConfig } from './config.ts';
import { registerScanMetrics } from './metrics.ts';
import type { ScanReport } from './scan/report.ts';
import { runScan } from './scan/scan.ts';
import { compactReport, saveLastResult } from './scan/scan-state.ts';
import { openScanServices } from './scan-services.ts';

export const SCAN_SCHEDULER_ID = 'healer-scan';

/**
 * CRING_S3_RETENTION_DAYS: after each scheduled scan, noncurrent backup versions past the retention are deleted
 * (versitygw has no lifecycle rules; see libs/backup-store/src/retention.ts). A failure is logged, not fatal.
 */
async function pruneBackups(
  store: BackupStore,
  retentionDays: number,
  log: { info(o: object, m: string): void; warn(o: object, m: string): void },
  signal: AbortSignal,
): Promise<void> {
  try {
    const pruned = await pruneNoncurrentVersions(store, { retentionDays, signal });
    log.info({ ...pruned, retentionDays }, 'pruned noncurrent backup versions past the retention');
  } catch (err) {
    log.warn({ err: (err as Error).message, retentionDays }, 'could not prune noncurrent backup versions');
  }
}

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'healer', level: config.logLevel });
  // BullMQ workers block on Redis: they need unlimited retries per request.
  const connection = connectRedis(config.redis, { maxRetriesPerRequest: null });
  connection.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const services = openScanServices(config, connection);
  const versioning = await guardBucketVersioning(services.deps.store, config.s3, logger);
  const registry = createMetricsRegistry('healer');
  registerScanMetrics(registry, connection);
  const metricsServer = serveMetrics({ registry, ...config.metrics, logger });
  await metricsServer.listen();
  const scheduler = new Queue(HEALER_QUEUE, { connection, prefix: QUEUE_PREFIX });
  let running: AbortController | undefined;

  const worker = new Worker<unknown, ScanReport>(
    HEALER_QUEUE,
    async (job: Job) => {
      const log = logger.child({ queue: HEALER_QUEUE, jobId: job.id, attempt: job.attemptsMade + 1 });
      running = new AbortController();
      log.info({ deep: config.scheduledDeep, prune: config.scheduledPrune }, 'scan started');
      try {
        // A scan a shutdown interrupted continues where it stopped.
        const { report } = await runScan(services.deps, {
          deep: config.scheduledDeep,
          prune: config.scheduledPrune,
          dryRun: false,
          resume: true,
          signal: running.signal,
        });
        const compact = compactReport(report);
        await saveLastResult(connection, compact);
        if (config.s3.retentionDays !== undefined)
          await pruneBackups(services.deps.store, config.s3.retentionDays, log, running.signal);
        log[report.exitCode === 0 ? 'info' : 'warn'](
          {
            stats: report.stats,
            rates: report.rates,
            seconds: report.scanSeconds,
            unreachable: report.unreachable,
            interrupted: report.interrupted,
            findings: report.findings.slice(0, 20),
          },
          report.healthy ? 'scan finished: healthy' : 'scan finished: repairs enqueued or problems remain',
        );
        return compact;
      } finally {
        running = undefined;
      }
    },
    { connection, prefix: QUEUE_PREFIX, concurrency: 1 },
  );
  worker.on('failed', (job, err) =>
    logger.error({ queue: HEALER_QUEUE, jobId: job?.id, err: err.message }, 'scan failed'),
  );
  worker.on('error', (err) => logger.warn({ queue: HEALER_QUEUE, err: err.message }, 'worker error'));

  await scheduler.upsertJobScheduler(
    SCAN_SCHEDULER_ID,
    { every: config.intervalMs },
    {
      name: 'scan',
      data: {},
      opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 }, attempts: 1 },
    },
  );

  installShutdown({
    logger,
    deadlineMs: config.shutdownDeadlineMs,
    shutdown: async () => {
      versioning.stop();
      await metricsServer.close();
      running?.abort(); // the scan finishes the users in progress, then the job returns
      await worker.close();
      await scheduler.close();
      await services.close();
      connection.disconnect();
    },
  });
  logger.info(
    {
      backends: config.backends.map((b) => b.name),
      intervalMs: config.intervalMs,
      maxRequestsPerSecond: config.maxRequestsPerSecond,
      deep: config.scheduledDeep,
      prune: config.scheduledPrune,
    },
    'healer ready',
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
