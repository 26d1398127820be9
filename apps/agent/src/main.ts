import { readFileSync } from 'node:fs';
import { verifyAgentToken } from '@cring/agent-protocol';
import { loadServerKey } from '@cring/charm';
import { createLogger, createMetricsRegistry, installShutdown } from '@cring/service-runtime';
import { buildAgentApp } from './app.ts';
import { loadConfig } from './config.ts';
import { readDiskSpace } from './disk-space.ts';
import { createAgentMetrics } from './metrics.ts';
import { createTempSweeper } from './temp-sweeper.ts';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'agent', level: config.logLevel });
  const key = loadServerKey(config.serverKeyFile);
  const registry = createMetricsRegistry('agent');
  const diskSpace = () => readDiskSpace(config.dataDir, config.reserve);
  const metrics = createAgentMetrics(registry, config.backend, diskSpace);
  const sweeper =
    config.tempSweep &&
    createTempSweeper({
      dir: config.tempSweep.dir,
      minAgeMs: config.tempSweep.maxAgeMs,
      intervalMs: config.tempSweep.intervalMs,
      logger,
      onSweep: metrics.swept,
      onError: metrics.sweepFailed,
    });
  if (!sweeper)
    logger.warn("CRING_AGENT_SERVER_TMP_DIR is not set: the server's leaked upload temp files are not swept");
  const app = buildAgentApp({
    backend: { name: config.backend, dataDir: config.dataDir },
    verify: (token) =>
      verifyAgentToken(token, {
        publicKey: key.publicKey,
        kid: key.kid,
        issuer: config.issuer,
        backend: config.backend,
      }),
    serverKeyFile: config.serverKeyFile,
    maxDbBytes: config.maxDbBytes,
    logger,
    tls: config.tls && { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) },
    metrics: registry,
    diskSpace,
  });
  installShutdown({
    logger,
    deadlineMs: config.shutdownDeadlineMs,
    shutdown: async () => {
      await sweeper?.stop();
      await app.close();
    },
  });
  await app.listen({ host: config.host, port: config.port });
  sweeper?.start();
  logger.info({ backend: config.backend, host: config.host, port: config.port }, 'agent ready');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
