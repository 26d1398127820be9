import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Backend, parseOpenSshPublicKey } from '@cring/charm';
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
  /** A refused write whose intent Redis lost is recorded again; while Redis does not answer, retried this long
   *  (the healer's CRING_LOST_WRITE_GRACE_MS must stay longer), the client's 503 waiting for the first part. */
  CRING_REFUSAL_RECORD_HORIZON_MS: positiveInt.default(60_000),
  CRING_REFUSAL_RECORD_ANSWER_WAIT_MS: z.coerce.number().int().min(0).default(2_000),
  /** This gateway's name in the locks it takes (default gateway@host:httpPort); a restart under the same name
   *  frees the locks of its previous run at once. Unique per gateway. */
  CRING_INSTANCE_NAME: z.string().optional(),
  CRING_ACCOUNT_SYNC: booleanField.default(true),
  CRING_ACCOUNT_SYNC_WAIT_MS: positiveInt.default(15_000),
  CRING_HEALTH_INTERVAL_MS: positiveInt.default(2_000),
  /** The account primary's lease in Redis; every gateway renews it each health round while the holder is healthy. */
  CRING_ACCOUNT_PRIMARY_LEASE_MS: positiveInt.default(15_000),
  CRING_BACKEND_TIMEOUT_MS: positiveInt.default(30_000),
  /** File reads' keep-alive pool (backends/socket-reads.ts): idle connections kept per backend, and for how long. */
  CRING_BACKEND_READ_IDLE_SOCKETS: positiveInt.default(32),
  CRING_BACKEND_READ_KEEP_IDLE_MS: positiveInt.default(30_000),
  /** A file read's GET leaves before the manifest answers (reads/read-ahead.ts); false waits for the plan first. */
  CRING_READ_AHEAD: booleanField.default(true),
  /** After the answer, the gateway sends a body it holds in memory to the owners the quorum left out and to S3
   *  (replication/remaining-copies.ts); false leaves every such copy to the replicator. */
  CRING_REMAINING_COPIES: booleanField.default(true),
  /** How long such a copy's job waits as its fallback (a gateway killed before the copy was recorded). */
  CRING_REMAINING_COPIES_FALLBACK_MS: positiveInt.default(30_000),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(15_000),
  /** The cluster's public key in OpenSSH form (`ssh-ed25519 AAAA…`), when the key file is not on this host. */
  CRING_SERVER_PUBLIC_KEY: z.string().optional(),
  // Limits (docs/security.md lists each with why its default is safe).
  CRING_HTTP_HEADERS_TIMEOUT_MS: positiveInt.default(20_000),
  CRING_HTTP_REQUEST_TIMEOUT_MS: positiveInt.default(30 * 60_000),
  CRING_HTTP_IDLE_TIMEOUT_MS: positiveInt.default(120_000),
  CRING_HTTP_KEEP_ALIVE_TIMEOUT_MS: positiveInt.default(10_000),
  CRING_HTTP_MAX_CONNECTIONS: positiveInt.default(2_000),
  CRING_SSH_MAX_CONNECTIONS: positiveInt.default(1_000),
  CRING_SPOOL_BUDGET_BYTES: positiveInt.default(8 * 1024 ** 3),
  CRING_SPOOL_BUDGET_WAIT_MS: positiveInt.default(5_000),
  CRING_UPLOAD_STALL_TIMEOUT_MS: positiveInt.default(20_000),
  CRING_BACKEND_RESPONSE_DEADLINE_MS: positiveInt.default(35 * 60_000),
});

export interface GatewayConfig {
  backends: Backend[];
  issuer: string;
  serverKeyFile?: string;
  /** The agents the health monitor asks for free space (any subset of the backends; needs the cluster key). */
  agents: AgentAddress[];
  redis: RedisSettings;
  /** The cluster's public key (OpenSSH form) when no key file is configured; a backend's JWKS must match it. */
  serverPublicKey?: string;
  /** The backup bucket, read while no backend is reachable (optional). */
  s3?: S3Settings;
  replicationFactor: number;
  writeQuorum: number;
  http: { host: string; port: number; tls?: { certFile: string; keyFile: string } };
  ssh: { host: string; port: number };
  admin: { host: string; port: number; credentials?: { user: string; password: string } };
  spool: {
    dir: string;
    memoryBytes: number;
    maxUploadBytes: number;
    /** Upload bytes all requests together may hold in the spool (memory and disk). */
    budgetBytes: number;
    /** How long an upload waits for spool budget before it is refused with 503 and Retry-After. */
    budgetWaitMs: number;
    /** An upload that sends no byte for this long fails with 408 (the client's fault) and releases its lock. */
    stallTimeoutMs: number;
  };
  /** What keeps one client (or many) from holding the gateway's sockets, memory or disk. */
  limits: {
    /** Time a client has to send a request's head (slow headers). */
    headersTimeoutMs: number;
    /** Time a client has to send a whole request, body included. */
    requestTimeoutMs: number;
    /** A connection with no traffic either way for this long is closed (a client that stopped reading). */
    idleTimeoutMs: number;
    /** How long a keep-alive connection waits for its next request. */
    keepAliveTimeoutMs: number;
    httpMaxConnections: number;
    sshMaxConnections: number;
    /** A backend exchange (request and whole response) that takes longer is cut, freeing its pooled socket. */
    backendResponseDeadlineMs: number;
  };
  lockWaitMs: number;
  backupReadTimeoutMs: number;
  /** Putting a refused write back on record while Redis does not answer (replication/refusal-records.ts). */
  refusalRecord: { horizonMs: number; answerWaitMs: number };
  instanceName: string;
  /** Wait for account sync before a new user's first request (needs a replicator with every data dir). */
  accountSync: { enabled: boolean; waitMs: number };
  healthIntervalMs: number;
  accountPrimaryLeaseMs: number;
  backendTimeoutMs: number;
  /** The keep-alive pool of file reads: idle connections kept per backend, and how long one stays idle. */
  readPool: { idleSocketsPerBackend: number; keepIdleMs: number };
  /** Send a file read to a backend while the manifest is asked (reads/read-ahead.ts). */
  readAhead: boolean;
  /** The gateway sends an in-memory body's remaining copies itself (replication/remaining-copies.ts). */
  remainingCopies: { enabled: boolean; fallbackMs: number };
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
  const agents = agentsFrom(e, backends, problems, { all: false });
  if (agents.length > 0 && !e.CRING_SERVER_KEY_FILE)
    problems.push('CRING_AGENTS: reaching the agents needs the cluster key (CRING_SERVER_KEY_FILE)');
  if (!e.CRING_SERVER_KEY_FILE && !e.CRING_SERVER_PUBLIC_KEY) {
    problems.push(
      'CRING_SERVER_KEY_FILE or CRING_SERVER_PUBLIC_KEY: set one, so tokens are checked against the configured cluster key',
    );
  }
  if (e.CRING_SERVER_PUBLIC_KEY) {
    try {
      parseOpenSshPublicKey(e.CRING_SERVER_PUBLIC_KEY);
    } catch (err) {
      problems.push(`CRING_SERVER_PUBLIC_KEY: ${(err as Error).message}`);
    }
  }
  if (e.CRING_SPOOL_BUDGET_BYTES < e.CRING_MAX_UPLOAD_BYTES) {
    problems.push(
      'CRING_SPOOL_BUDGET_BYTES: must be at least CRING_MAX_UPLOAD_BYTES (one largest upload fits)',
    );
  }
  if (e.CRING_REFUSAL_RECORD_ANSWER_WAIT_MS > e.CRING_REFUSAL_RECORD_HORIZON_MS) {
    problems.push(
      'CRING_REFUSAL_RECORD_ANSWER_WAIT_MS: must not exceed CRING_REFUSAL_RECORD_HORIZON_MS (the answer waits for part of it)',
    );
  }
  if (e.CRING_UPLOAD_STALL_TIMEOUT_MS >= e.CRING_BACKEND_TIMEOUT_MS) {
    // Otherwise a client's stall would first show up as a silent backend and count against it.
    problems.push('CRING_UPLOAD_STALL_TIMEOUT_MS: must be shorter than CRING_BACKEND_TIMEOUT_MS');
  }
  if (e.CRING_HTTP_IDLE_TIMEOUT_MS <= e.CRING_LOCK_WAIT_MS + e.CRING_BACKEND_TIMEOUT_MS) {
    // A request waiting for a path lock and then a backend sends nothing to its client meanwhile.
    problems.push(
      'CRING_HTTP_IDLE_TIMEOUT_MS: must be longer than CRING_LOCK_WAIT_MS + CRING_BACKEND_TIMEOUT_MS',
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
    agents,
    serverPublicKey: e.CRING_SERVER_PUBLIC_KEY,
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
      budgetBytes: e.CRING_SPOOL_BUDGET_BYTES,
      budgetWaitMs: e.CRING_SPOOL_BUDGET_WAIT_MS,
      stallTimeoutMs: e.CRING_UPLOAD_STALL_TIMEOUT_MS,
    },
    limits: {
      headersTimeoutMs: e.CRING_HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.CRING_HTTP_REQUEST_TIMEOUT_MS,
      idleTimeoutMs: e.CRING_HTTP_IDLE_TIMEOUT_MS,
      keepAliveTimeoutMs: e.CRING_HTTP_KEEP_ALIVE_TIMEOUT_MS,
      httpMaxConnections: e.CRING_HTTP_MAX_CONNECTIONS,
      sshMaxConnections: e.CRING_SSH_MAX_CONNECTIONS,
      backendResponseDeadlineMs: e.CRING_BACKEND_RESPONSE_DEADLINE_MS,
    },
    lockWaitMs: e.CRING_LOCK_WAIT_MS,
    backupReadTimeoutMs: e.CRING_BACKUP_READ_TIMEOUT_MS,
    refusalRecord: {
      horizonMs: e.CRING_REFUSAL_RECORD_HORIZON_MS,
      answerWaitMs: e.CRING_REFUSAL_RECORD_ANSWER_WAIT_MS,
    },
    instanceName:
      e.CRING_INSTANCE_NAME ??
      // Port 0 (tests) is not unique: the process id is, for this run.
      `gateway@${hostname()}:${e.CRING_HTTP_PORT === 0 ? `pid-${process.pid}` : e.CRING_HTTP_PORT}`,
    accountSync: { enabled: e.CRING_ACCOUNT_SYNC, waitMs: e.CRING_ACCOUNT_SYNC_WAIT_MS },
    healthIntervalMs: e.CRING_HEALTH_INTERVAL_MS,
    accountPrimaryLeaseMs: e.CRING_ACCOUNT_PRIMARY_LEASE_MS,
    backendTimeoutMs: e.CRING_BACKEND_TIMEOUT_MS,
    readPool: {
      idleSocketsPerBackend: e.CRING_BACKEND_READ_IDLE_SOCKETS,
      keepIdleMs: e.CRING_BACKEND_READ_KEEP_IDLE_MS,
    },
    readAhead: e.CRING_READ_AHEAD,
    remainingCopies: { enabled: e.CRING_REMAINING_COPIES, fallbackMs: e.CRING_REMAINING_COPIES_FALLBACK_MS },
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
