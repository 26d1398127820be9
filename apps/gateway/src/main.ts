import { readFileSync } from 'node:fs';
import { flushCompileCache } from 'node:module';
import { createRedisAccountBaseStore } from '@cring/accounts';
import { createAgentClient } from '@cring/agent-protocol';
import { createBackupStore, guardBucketVersioning } from '@cring/backup-store';
import { loadServerKey } from '@cring/charm';
import { connectRedis } from '@cring/config';
import { createJobQueues, S3_TARGET } from '@cring/jobs';
import { createManifest, createProcessLiveness } from '@cring/manifest';
import { createRing } from '@cring/ring';
import { createLogger, createMetricsRegistry, installShutdown } from '@cring/service-runtime';
import { createAccountPresence } from './accounts/account-presence.ts';
import { buildAdminApp } from './admin/admin-app.ts';
import { createTokenVerifier, trustedClusterKey } from './auth/token-verifier.ts';
import { createBackendHttp } from './backends/backend-http.ts';
import { createSocketReads } from './backends/socket-reads.ts';
import { loadConfig } from './config.ts';
import { createAccountPrimary } from './health/account-primary.ts';
import { createHealthMonitor } from './health/health-monitor.ts';
import { buildHttpApp } from './http/app.ts';
import { trackOpenConnections } from './http/open-connections.ts';
import { createGatewayMetrics } from './metrics.ts';
import { createAccountLookup } from './read-only/account-lookup.ts';
import { createFallbackSsh } from './read-only/fallback-ssh.ts';
import { createReadBalancer } from './reads/read-balancer.ts';
import { createPlacement } from './replication/placement.ts';
import { createRefusalJournal } from './replication/refusal-journal.ts';
import { createRefusalRecords } from './replication/refusal-records.ts';
import { createRemainingCopies } from './replication/remaining-copies.ts';
import { createUnresolvedWrites } from './replication/unresolved-writes.ts';
import { SpoolBudget } from './spool/spool-budget.ts';
import { prepareSpoolDir } from './spool/spool-dir.ts';
import { createSshPassThrough } from './ssh/pass-through.ts';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'gateway', level: config.logLevel });
  // Fail fast when Redis is down: a write is refused (503) rather than left waiting or unrecorded.
  const redis = connectRedis(config.redis, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    lazyConnect: true,
  });
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  await redis
    .connect()
    .catch((err) => logger.error({ err }, 'redis unreachable at start; writes answer 503 until it is back'));

  // Locks carry this process's name: a restart frees its previous run's locks at once, a death within the
  // liveness TTL, so a gateway killed mid-upload does not block that path for a whole lock TTL.
  const liveness = createProcessLiveness(redis, config.instanceName, {
    onError: (err) => logger.warn({ err: (err as Error).message }, 'could not refresh the liveness key'),
  });
  await liveness
    .start()
    .catch((err) =>
      logger.warn({ err: err.message }, 'could not announce this gateway; retried in the background'),
    );
  // Spool files of a killed gateway on this host are removed now, not left forever.
  // Best effort: the folder is also created on the first upload that needs it.
  await prepareSpoolDir(config.spool.dir).then(
    ({ removed }) => {
      if (removed.length > 0) logger.warn({ removed }, "removed dead gateways' spool files");
    },
    (err: Error) =>
      logger.warn({ err: err.message, dir: config.spool.dir }, 'could not sweep the spool folder'),
  );
  const registry = createMetricsRegistry('gateway');
  const manifest = createManifest(redis, { replicaWait: config.redis.replicaWait, owner: liveness.owner });
  const queues = createJobQueues({
    connection: redis,
    manifest,
    backends: config.backends.map((b) => b.name),
  });
  const clusterKey = config.serverKeyFile ? loadServerKey(config.serverKeyFile) : undefined;
  const agents = new Map(
    clusterKey
      ? config.agents.map((a) => [
          a.name,
          createAgentClient({ backend: a.name, url: a.url, key: clusterKey, issuer: config.issuer }),
        ])
      : [],
  );
  const health = createHealthMonitor({
    backends: config.backends,
    logger,
    intervalMs: config.healthIntervalMs,
    diskSpace: (backend, timeoutMs) => agents.get(backend.name)?.diskSpace({ timeoutMs }),
  });
  const metrics = createGatewayMetrics(
    registry,
    () => queues.all(),
    () => socketReads.stats(),
  );
  // A Sentinel failover shows as a lost connection that comes back (to the new primary).
  let redisWasReady = redis.status === 'ready';
  redis.on('ready', () => {
    metrics.redisConnected.set(1);
    if (redisWasReady) metrics.redisReconnects.inc();
    redisWasReady = true;
  });
  redis.on('close', () => metrics.redisConnected.set(0));
  metrics.redisConnected.set(redis.status === 'ready' ? 1 : 0);
  const reportHealth = (name: string) => {
    metrics.backendUp.set({ backend: name, protocol: 'http' }, health.isHttpHealthy(name) ? 1 : 0);
    metrics.backendUp.set({ backend: name, protocol: 'ssh' }, health.isSshHealthy(name) ? 1 : 0);
  };
  health.on('change', (name) => reportHealth(name));
  // One account primary for the cluster (a lease in Redis): every gateway sends SSH to the same backend.
  const accountPrimary = createAccountPrimary({
    redis,
    backends: config.backends,
    isSshHealthy: (name) => health.isSshHealthy(name),
    leaseTtlMs: config.accountPrimaryLeaseMs,
    logger,
  });
  health.on('change', () => void accountPrimary.maintain());
  const leaseTimer = setInterval(() => void accountPrimary.maintain(), config.healthIntervalMs).unref();
  const placement = createPlacement({
    ring: createRing(config.backends.map((b) => b.name)),
    backends: config.backends,
    replicationFactor: config.replicationFactor,
    isHealthy: (name) => health.isHttpHealthy(name),
    accountPrimary: () => accountPrimary.current(),
    hasSpace: (name) => health.hasSpace(name),
  });
  const backendHttp = createBackendHttp({
    idleTimeoutMs: config.backendTimeoutMs,
    responseDeadlineMs: config.limits.backendResponseDeadlineMs,
    onDeadline: () => metrics.limitTrips.inc({ limit: 'backend_response_deadline' }),
  });
  const socketReads = createSocketReads({
    idleTimeoutMs: config.backendTimeoutMs,
    responseDeadlineMs: config.limits.backendResponseDeadlineMs,
    onDeadline: () => metrics.limitTrips.inc({ limit: 'backend_response_deadline' }),
    maxIdlePerBackend: config.readPool.idleSocketsPerBackend,
    keepIdleMs: config.readPool.keepIdleMs,
  });
  const verifier = createTokenVerifier({
    issuer: config.issuer,
    clusterKey: trustedClusterKey(config),
    backends: config.backends,
    logger,
  });
  const accountPresence = config.accountSync.enabled
    ? createAccountPresence({
        redis,
        connect: (options) => connectRedis(config.redis, options),
        waitMs: config.accountSync.waitMs,
        logger,
      })
    : { ensure: async () => {}, refresh: async () => {}, close: async () => {} };
  const backupStore = config.s3 ? createBackupStore(config.s3) : undefined;
  const versioning =
    backupStore && config.s3 ? await guardBucketVersioning(backupStore, config.s3, logger) : undefined;
  // Read-only SSH answers need the cluster key (to mint tokens) and the synced account state.
  const fallbackSsh =
    config.serverKeyFile && clusterKey
      ? createFallbackSsh({
          key: clusterKey,
          hostKey: readFileSync(config.serverKeyFile),
          issuer: config.issuer,
          httpScheme: config.http.tls ? 'https' : 'http',
          accounts: createAccountLookup(createRedisAccountBaseStore(redis)),
          logger,
        })
      : undefined;
  const refusalRecords = createRefusalRecords({
    manifest,
    settings: config.refusalRecord,
    journal: createRefusalJournal(config.spool.dir),
    onAwaitingChange: (count) => metrics.refusalsAwaitingRecord.set(count),
  });
  // Refusals a gateway killed (or stopped) here before Redis answered left unrecorded: retried in the background.
  await refusalRecords.resume(logger);
  const remainingCopies = createRemainingCopies({
    manifest,
    queues,
    onOutcome: (target, outcome) =>
      metrics.remainingCopies.inc({ target: target === S3_TARGET ? 's3' : 'owner', outcome }),
  });
  const app = buildHttpApp(
    {
      config,
      logger,
      placement,
      readBalancer: createReadBalancer(),
      reportBackendFailure: (name, err) => health.reportHttpFailure(name, err),
      manifest,
      queues,
      backendHttp,
      socketReads,
      verifier,
      accountPresence,
      backupStore,
      metrics,
      spoolBudget: new SpoolBudget({
        totalBytes: config.spool.budgetBytes,
        waitMs: config.spool.budgetWaitMs,
      }),
      unresolvedWrites: createUnresolvedWrites(),
      refusalRecords,
      remainingCopies,
    },
    config.http.tls && {
      cert: readFileSync(config.http.tls.certFile),
      key: readFileSync(config.http.tls.keyFile),
    },
  );
  const ssh = createSshPassThrough({
    logger,
    selectBackend: (failed) => accountPrimary.choose(failed.map((b) => b.name)),
    onBackendFailure: (backend, err) => health.reportSshFailure(backend.name, err),
    whenNoBackend: fallbackSsh ? (client) => fallbackSsh.accept(client) : undefined,
    maxConnections: config.limits.sshMaxConnections,
    onRefused: () => metrics.limitTrips.inc({ limit: 'ssh_connections' }),
  });
  const openConnections = trackOpenConnections(app.server);
  const admin = await buildAdminApp({
    logger,
    openConnections,
    queues: () => queues.all(),
    credentials: config.admin.credentials,
    metrics: registry,
    status: async () => ({
      accountPrimary: accountPrimary.current() ?? null,
      backends: config.backends.map((b) => ({ name: b.name, ...health.health(b.name) })),
    }),
  });

  installShutdown({
    logger,
    deadlineMs: config.shutdownDeadlineMs,
    shutdown: async () => {
      clearInterval(leaseTimer);
      versioning?.stop();
      await ssh.close();
      fallbackSsh?.close();
      await app.close(); // stops accepting, waits for in-flight requests
      await remainingCopies.drain(); // copies answered writes still send (their fallback jobs cover a kill)
      refusalRecords.close(); // each refusal still unrecorded stays in the journal for the next gateway here
      await admin.close();
      await health.stop();
      verifier.close();
      backendHttp.close();
      socketReads.close();
      await queues.close();
      await accountPresence.close();
      backupStore?.close();
      await liveness.stop();
      redis.disconnect();
    },
  });

  await health.checkNow(); // start with a real view of the backends
  for (const backend of config.backends) reportHealth(backend.name);
  await accountPrimary.maintain();
  health.start();
  await app.listen({ host: config.http.host, port: config.http.port });
  const sshPort = await ssh.listen(config.ssh.port, config.ssh.host);
  await admin.listen({ host: config.admin.host, port: config.admin.port });
  logger.info(
    { http: config.http, sshPort, admin: config.admin.port, backends: config.backends.map((b) => b.name) },
    'gateway ready',
  );
  // With NODE_COMPILE_CACHE set, store the type-stripped sources now (Node writes them only on a clean exit, which
  // a signal is not): the next start skips the TypeScript stripper, about 35 MiB less RSS. A no-op without it.
  flushCompileCache();
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
