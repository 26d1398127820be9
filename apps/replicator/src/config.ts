import type { Backend } from '@cring/charm';
import {
  type AgentAddress,
  agentsFrom,
  backendsFrom,
  booleanField,
  issuesOf,
  missingRedis,
  type RedisSettings,
  redisEnvFields,
  redisFrom,
  requiredIssuer,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from '@cring/config';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

const schema = z.object({
  ...sharedEnvFields,
  CRING_ISSUER: requiredIssuer,
  CRING_SERVER_KEY_FILE: z.string({
    error: 'required: the cluster key (charm_server_ed25519) to mint tokens for repairs',
  }),
  ...redisEnvFields,
  /** Backend queues this process serves (comma-separated names); all by default. */
  CRING_REPLICATOR_BACKENDS: z.string().optional(),
  CRING_REPLICATOR_S3: booleanField.default(true),
  // Jobs at once per queue: a backlog of small copies then shares Redis writes (auto-pipelined) and agent calls
  // (several files per call); 16 cost 1.3 ms of replicator CPU per 4 KiB job where 4 cost 2.0.
  CRING_REPLICATOR_CONCURRENCY: positiveInt.default(16),
  CRING_ACCOUNT_SYNC_INTERVAL_MS: positiveInt.default(5_000),
  CRING_ACCOUNT_BACKUP_INTERVAL_MS: positiveInt.default(3_600_000),
  /** How long a repair to a backend under its free-space reserve waits before it looks again. */
  CRING_REPLICATOR_FULL_BACKEND_RETRY_MS: positiveInt.default(30_000),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(30_000),
  CRING_METRICS_HOST: z.string().default('127.0.0.1'),
  CRING_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(35381),
});

export interface ReplicatorConfig {
  backends: Backend[];
  servedBackends: string[];
  serveS3: boolean;
  issuer: string;
  serverKeyFile: string;
  redis: RedisSettings;
  s3: S3Settings;
  concurrency: number;
  /** Every backend's agent, in configured order (or none: then this process runs no account sync). */
  agents: AgentAddress[];
  accountSyncIntervalMs: number;
  accountBackupIntervalMs: number;
  fullBackendRetryMs: number;
  shutdownDeadlineMs: number;
  metrics: { host: string; port: number };
  logLevel: string;
}

/** Reads the replicator's settings from the environment; every bad key is listed in one error. */
export function loadConfig(env: NodeJS.ProcessEnv): ReplicatorConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new Error(
      `invalid replicator configuration:\n${[...issuesOf(parsed.error), ...missingRedis(env)]
        .map((p) => `  ${p}`)
        .join('\n')}`,
    );
  }
  const e = parsed.data;
  const problems: string[] = [];
  const backends = backendsFrom(e, problems);
  const s3 = s3From(e, problems, { required: true });
  // Account sync must see every backend's accounts, or it would take a missing backend for an empty one.
  const agents = agentsFrom(e, backends, problems, { all: true });
  const served = e.CRING_REPLICATOR_BACKENDS
    ? e.CRING_REPLICATOR_BACKENDS.split(',')
        .map((name) => name.trim())
        .filter(Boolean)
    : backends.map((b) => b.name);
  for (const name of served) {
    if (!backends.some((b) => b.name === name))
      problems.push(`CRING_REPLICATOR_BACKENDS: ${name} is not in CRING_BACKENDS`);
  }
  const redis = redisFrom(e, problems, { required: true });
  if (problems.length > 0 || !redis || !s3) {
    throw new Error(`invalid replicator configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  return {
    backends,
    servedBackends: served,
    serveS3: e.CRING_REPLICATOR_S3,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE,
    redis,
    s3,
    concurrency: e.CRING_REPLICATOR_CONCURRENCY,
    agents,
    accountSyncIntervalMs: e.CRING_ACCOUNT_SYNC_INTERVAL_MS,
    accountBackupIntervalMs: e.CRING_ACCOUNT_BACKUP_INTERVAL_MS,
    fullBackendRetryMs: e.CRING_REPLICATOR_FULL_BACKEND_RETRY_MS,
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    metrics: { host: e.CRING_METRICS_HOST, port: e.CRING_METRICS_PORT },
    logLevel: e.LOG_LEVEL,
  };
}
