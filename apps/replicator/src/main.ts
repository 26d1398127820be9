import { hostname } from 'node:os';
import { createBackupStore, guardBucketVersioning } from '@cring/backup-store';
import { loadServerKey } from '@cring/charm';
import { connectRedis } from '@cring/config';
import { createManifest, createProcessLiveness } from '@cring/manifest';
import { createLogger, createMetricsRegistry, installShutdown, serveMetrics } from '@cring/service-runtime';
import { loadConfig } from './config.ts';
import { startWorkers } from './workers.ts';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'replicator', level: config.logLevel });
  const key = loadServerKey(config.serverKeyFile);
  // BullMQ workers block on Redis: they need unlimited retries per request.
  const connection = connectRedis(config.redis, { maxRetriesPerRequest: null });
  connection.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  // Locks carry this process's name, so a killed replicator's locks are broken within the liveness TTL.
  const liveness = createProcessLiveness(connection, `replicator@${hostname()}:pid-${process.pid}`, {
    onError: (err) => logger.warn({ err: (err as Error).message }, 'could not refresh the liveness key'),
  });
  await liveness.start();
  // The manifest gets its own connection with auto-pipelining: the small reads and scripts that concurrent jobs
  // issue in the same tick leave in one write instead of one syscall each.
  const manifestConnection = connectRedis(config.redis, {
    maxRetriesPerRequest: null,
    enableAutoPipelining: true,
  });
  manifestConnection.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  const manifest = createManifest(manifestConnection, { owner: liveness.owner });
  const store = createBackupStore(config.s3);
  const versioning = await guardBucketVersioning(store, config.s3, logger);
  const registry = createMetricsRegistry('replicator');
  const workers = startWorkers({ config, logger, connection, manifest, key, store, metrics: registry });
  const metricsServer = serveMetrics({ registry, ...config.metrics, logger });
  await metricsServer.listen();

  installShutdown({
    logger,
    deadlineMs: config.shutdownDeadlineMs,
    shutdown: async () => {
      versioning.stop();
      await metricsServer.close();
      await workers.close();
      store.close();
      await liveness.stop();
      connection.disconnect();
      manifestConnection.disconnect();
    },
  });
  logger.info(
    { backends: config.servedBackends, s3: config.serveS3, concurrency: config.concurrency },
    'replicator ready',
  );
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
