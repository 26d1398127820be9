import type { Backend } from '@cring/charm';
import {
  type AgentAddress,
  agentsFrom,
  backendsFrom,
  booleanField as bool,
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
import { DEFAULT_JOB_OPTIONS } from '@cring/jobs';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();
const DAY_MS = 24 * 3600 * 1000;

const schema = z.object({
  ...sharedEnvFields,
  CRING_ISSUER: requiredIssuer,
  CRING_SERVER_KEY_FILE: z.string({
    error: 'required: the cluster key (charm_server_ed25519) to mint tokens for listing and repairs',
  }),
  ...redisEnvFields,
  CRING_REPLICATION_FACTOR: positiveInt.default(3),
  CRING_HEALER_MAX_REQUESTS_PER_SECOND: z.coerce.number().positive().default(200),
  /** Copies checked, hashed or repaired at once (across users). */
  CRING_HEALER_CONCURRENCY: positiveInt.default(8),
  /** Users scanned at once. */
  CRING_HEALER_USER_CONCURRENCY: positiveInt.default(2),
  CRING_HEALER_INTERVAL_MS: positiveInt.default(3_600_000),
  /** Scheduled scans: compare sha256 too (reads every byte), and prune copies from non-owners. */
  CRING_HEALER_DEEP: bool.default(false),
  CRING_HEALER_PRUNE: bool.default(false),
  CRING_HEALER_WAIT_TIMEOUT_MS: positiveInt.default(600_000),
  /** A pending marker whose job cannot be found is stale only after this long (the marker is written first). */
  CRING_HEALER_PENDING_GRACE_MS: z.coerce.number().int().min(0).default(60_000),
  CRING_TOMBSTONE_RETENTION_MS: positiveInt.default(7 * DAY_MS),
  /** Row L1 adopts only copies older than this: it outlasts the gateway's CRING_REFUSAL_RECORD_HORIZON_MS (60 s),
   *  an upload's last byte to its refusal, and clock skew between backends and the healer. */
  CRING_LOST_WRITE_GRACE_MS: z.coerce
    .number()
    .int()
    .min(0)
    .default(10 * 60_000),
  CRING_METRICS_HOST: z.string().default('127.0.0.1'),
  CRING_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(35382),
  CRING_BACKEND_TIMEOUT_MS: positiveInt.default(30_000),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(30_000),
});

export interface HealerConfig {
  backends: Backend[];
  issuer: string;
  serverKeyFile: string;
  redis: RedisSettings;
  s3: S3Settings;
  replicationFactor: number;
  /** Backends whose data dir this process can read, in configured order. */
  /** Agents beside backends, to list the users in their DBs (any subset). */
  agents: AgentAddress[];
  maxRequestsPerSecond: number;
  concurrency: number;
  userConcurrency: number;
  intervalMs: number;
  scheduledDeep: boolean;
  scheduledPrune: boolean;
  waitTimeoutMs: number;
  pendingGraceMs: number;
  tombstoneRetentionMs: number;
  lostWriteGraceMs: number;
  backendTimeoutMs: number;
  shutdownDeadlineMs: number;
  metrics: { host: string; port: number };
  logLevel: string;
}

/** A bad environment: every problem, each with what to change. */
export class ConfigError extends Error {
  readonly code = 'HEALER_CONFIG';
  readonly problems: string[];

  constructor(problems: string[]) {
    super(`invalid healer configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/**
 * How long a job may keep retrying: no tombstone may be forgotten sooner. An upper bound, one backoff per attempt
 * (BullMQ waits delay·2^(n-1) before retry n): 2 s … 68 min over 12 attempts, about 2.3 h.
 */
export function retryHorizonMs(options = DEFAULT_JOB_OPTIONS): number {
  const attempts = options.attempts ?? 1;
  const backoff = options.backoff;
  const delay = typeof backoff === 'number' ? backoff : (backoff?.delay ?? 0);
  const exponential = typeof backoff === 'object' && backoff.type === 'exponential';
  let total = 0;
  for (let attempt = 0; attempt < attempts; attempt++) total += exponential ? delay * 2 ** attempt : delay;
  return total;
}

const hours = (ms: number) => `${(ms / 3_600_000).toFixed(2)} h`;

/** Reads the healer's settings from the environment; every bad key is listed in one ConfigError. */
export function loadConfig(env: NodeJS.ProcessEnv): HealerConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new ConfigError([...issuesOf(parsed.error), ...missingRedis(env)]);
  const e = parsed.data;
  const problems: string[] = [];
  const backends = backendsFrom(e, problems);
  const s3 = s3From(e, problems, { required: true });
  // Read-only, to find users with no manifest entry: any subset of backends is fine.
  const agents = agentsFrom(e, backends, problems, { all: false });
  const horizonMs = retryHorizonMs();
  if (e.CRING_TOMBSTONE_RETENTION_MS <= horizonMs + e.CRING_HEALER_INTERVAL_MS) {
    problems.push(
      `CRING_TOMBSTONE_RETENTION_MS: ${hours(e.CRING_TOMBSTONE_RETENTION_MS)} must exceed the jobs' retry horizon (${hours(horizonMs)}) plus the scan interval CRING_HEALER_INTERVAL_MS (${hours(e.CRING_HEALER_INTERVAL_MS)}), or a copy that a retrying delete has not reached yet could come back; the default is 7 days`,
    );
  }
  const redis = redisFrom(e, problems, { required: true });
  if (problems.length > 0 || !redis || !s3) throw new ConfigError(problems);
  return {
    backends,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE,
    redis,
    s3,
    replicationFactor: e.CRING_REPLICATION_FACTOR,
    agents,
    maxRequestsPerSecond: e.CRING_HEALER_MAX_REQUESTS_PER_SECOND,
    concurrency: e.CRING_HEALER_CONCURRENCY,
    userConcurrency: e.CRING_HEALER_USER_CONCURRENCY,
    intervalMs: e.CRING_HEALER_INTERVAL_MS,
    scheduledDeep: e.CRING_HEALER_DEEP,
    scheduledPrune: e.CRING_HEALER_PRUNE,
    waitTimeoutMs: e.CRING_HEALER_WAIT_TIMEOUT_MS,
    pendingGraceMs: e.CRING_HEALER_PENDING_GRACE_MS,
    tombstoneRetentionMs: e.CRING_TOMBSTONE_RETENTION_MS,
    lostWriteGraceMs: e.CRING_LOST_WRITE_GRACE_MS,
    backendTimeoutMs: e.CRING_BACKEND_TIMEOUT_MS,
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    metrics: { host: e.CRING_METRICS_HOST, port: e.CRING_METRICS_PORT },
    logLevel: e.LOG_LEVEL,
  };
}
