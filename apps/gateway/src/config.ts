import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend } from '@cring/charm';
import {
  backendsFrom,
  booleanField,
  issuesOf,
  missingRedis,
  type RedisSettings,
  redisEnvFields,
  redisFrom,
  requiredIssuer,
  s3From,
  sharedEnvFields,
} from '@cring/config';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);
const positiveInt = z.coerce.number().int().positive();
const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

const schema = z.object({
  ...sharedEnvFields,
  CRING_ISSUER: requiredIssuer,
  CRING_SERVER_KEY_FILE: z.string().optional(),
  ...redisEnvFields,
  CRING_REPLICATION_FACTOR: positiveInt.default(3),
  CRING_WRITE_QUORUM: positiveInt.default(2),
  CRING_HTTP_HOST: z.string().default('0.0.0.0'),
  CRING_HTTP_PORT: port.default(35354),
  /** Serve HTTPS with this certificate and key (PEM). The backends' CHARM_SERVER_PUBLIC_URL must then say https. */
  CRING_TLS_CERT_FILE: z.string().optional(),
  CRING_TLS_KEY_FILE: z.string().optional(),
  CRING_SSH_HOST: z.string().default('0.0.0.0'),
  CRING_SSH_PORT: port.default(35353),
  CRING_ADMIN_HOST: z.string().default('127.0.0.1'),
  CRING_ADMIN_PORT: port.default(35380),
  CRING_ADMIN_USER: z.string().optional(),
  CRING_ADMIN_PASSWORD: z.string().optional(),
  CRING_SPOOL_DIR: z.string().default(join(tmpdir(), 'cring-spool')),
  CRING_SPOOL_MEMORY_BYTES: positiveInt.default(1024 * 1024),
  CRING_MAX_UPLOAD_BYTES: positiveInt.default(1024 * 1024 * 1024),
  CRING_LOCK_WAIT_MS: positiveInt.default(60_000),
  /** A read from the S3 backup (no backend reachable) that takes longer is answered 503. */
  CRING_BACKUP_READ_TIMEOUT_MS: positiveInt.default(30_000),
  /** This gateway's name in the locks it takes (default gateway@host:httpPort); a restart under the same name
   *  frees the locks of its previous run at once. Unique per gateway. */
  CRING_INSTANCE_NAME: z.string().optional(),
  CRING_ACCOUNT_SYNC: booleanField.default(true),
  CRING_ACCOUNT_SYNC_WAIT_MS: positiveInt.default(15_000),
  CRING_HEALTH_INTERVAL_MS: positiveInt.default(2_000),
  /** The account primary's lease in Redis; every gateway renews it each health round while the holder is healthy. */
  CRING_ACCOUNT_PRIMARY_LEASE_MS: positiveInt.default(15_000),
  CRING_BACKEND_TIMEOUT_MS: positiveInt.default(30_000),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(15_000),
});

export interface GatewayConfig {
  backends: Backend[];
  issuer: string;
  serverKeyFile?: string;
  redis: RedisSettings;
  /** The backup bucket, read while no backend is reachable (optional). */
  s3?: {
    endpoint?: string;
    region: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
    forcePathStyle: boolean;
  };
  replicationFactor: number;
  writeQuorum: number;
  http: { host: string; port: number; tls?: { certFile: string; keyFile: string } };
  ssh: { host: string; port: number };
  admin: { host: string; port: number; credentials?: { user: string; password: string } };
  spool: { dir: string; memoryBytes: number; maxUploadBytes: number };
  lockWaitMs: number;
  backupReadTimeoutMs: number;
  instanceName: string;
  /** Wait for account sync before a new user's first request (needs a replicator with every data dir). */
  accountSync: { enabled: boolean; waitMs: number };
  healthIntervalMs: number;
  accountPrimaryLeaseMs: number;
  backendTimeoutMs: number;
  shutdownDeadlineMs: number;
  logLevel: string;
}

/** Reads the gateway's settings from the environment; every bad key is listed in one error. */
export function loadConfig(env: NodeJS.ProcessEnv): GatewayConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new Error(
      `invalid gateway configuration:\n${[...issuesOf(parsed.error), ...missingRedis(env)]
        .map((p) => `  ${p}`)
        .join('\n')}`,
    );
  }
  const e = parsed.data;
  const problems: string[] = [];
  const backends = backendsFrom(e, problems);
  // Optional here: with a bucket, reads are served from it while no backend is reachable.
  const s3 = s3From(e, problems, { required: false });
  if (e.CRING_WRITE_QUORUM > e.CRING_REPLICATION_FACTOR) {
    problems.push('CRING_WRITE_QUORUM: must not exceed CRING_REPLICATION_FACTOR');
  }
  if (backends.length > 0 && e.CRING_WRITE_QUORUM > backends.length) {
    problems.push(
      `CRING_WRITE_QUORUM: ${e.CRING_WRITE_QUORUM} needs at least that many backends (${backends.length} configured)`,
    );
  }
  if (e.CRING_ACCOUNT_PRIMARY_LEASE_MS < 3 * e.CRING_HEALTH_INTERVAL_MS) {
    problems.push(
      'CRING_ACCOUNT_PRIMARY_LEASE_MS: must be at least 3 health rounds (CRING_HEALTH_INTERVAL_MS), or a healthy primary’s lease lapses between renewals',
    );
  }
  const hasUser = Boolean(e.CRING_ADMIN_USER);
  const hasPassword = Boolean(e.CRING_ADMIN_PASSWORD);
  if (Boolean(e.CRING_TLS_CERT_FILE) !== Boolean(e.CRING_TLS_KEY_FILE)) {
    problems.push('CRING_TLS_CERT_FILE and CRING_TLS_KEY_FILE: set both (HTTPS) or neither (HTTP)');
  }
  if (hasUser !== hasPassword)
    problems.push('CRING_ADMIN_USER and CRING_ADMIN_PASSWORD: set both or neither');
  if (!hasUser && !LOOPBACK.has(e.CRING_ADMIN_HOST)) {
    problems.push(
      `CRING_ADMIN_HOST: ${e.CRING_ADMIN_HOST} is not loopback; set CRING_ADMIN_USER and CRING_ADMIN_PASSWORD to expose the dashboard`,
    );
  }
  const redis = redisFrom(e, problems, { required: true });
  if (problems.length > 0 || !redis) {
    throw new Error(`invalid gateway configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  return {
    backends,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE,
    redis,
    s3,
    replicationFactor: e.CRING_REPLICATION_FACTOR,
    writeQuorum: e.CRING_WRITE_QUORUM,
    http: {
      host: e.CRING_HTTP_HOST,
      port: e.CRING_HTTP_PORT,
      tls:
        e.CRING_TLS_CERT_FILE && e.CRING_TLS_KEY_FILE
          ? { certFile: e.CRING_TLS_CERT_FILE, keyFile: e.CRING_TLS_KEY_FILE }
          : undefined,
    },
    ssh: { host: e.CRING_SSH_HOST, port: e.CRING_SSH_PORT },
    admin: {
      host: e.CRING_ADMIN_HOST,
      port: e.CRING_ADMIN_PORT,
      credentials: hasUser
        ? { user: e.CRING_ADMIN_USER as string, password: e.CRING_ADMIN_PASSWORD as string }
        : undefined,
    },
    spool: {
      dir: e.CRING_SPOOL_DIR,
      memoryBytes: e.CRING_SPOOL_MEMORY_BYTES,
      maxUploadBytes: e.CRING_MAX_UPLOAD_BYTES,
    },
    lockWaitMs: e.CRING_LOCK_WAIT_MS,
    backupReadTimeoutMs: e.CRING_BACKUP_READ_TIMEOUT_MS,
    instanceName:
      e.CRING_INSTANCE_NAME ??
      // Port 0 (tests) is not unique: the process id is, for this run.
      `gateway@${hostname()}:${e.CRING_HTTP_PORT === 0 ? `pid-${process.pid}` : e.CRING_HTTP_PORT}`,
    accountSync: { enabled: e.CRING_ACCOUNT_SYNC, waitMs: e.CRING_ACCOUNT_SYNC_WAIT_MS },
    healthIntervalMs: e.CRING_HEALTH_INTERVAL_MS,
    accountPrimaryLeaseMs: e.CRING_ACCOUNT_PRIMARY_LEASE_MS,
    backendTimeoutMs: e.CRING_BACKEND_TIMEOUT_MS,
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
