import { type Backend, parseBackends } from '@cring/charm';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();
const bool = z.enum(['true', 'false']).transform((v) => v === 'true');

const schema = z.object({
  CRING_BACKENDS: z.string({ error: 'required: name=httpUrl[|sshHost:sshPort],…' }),
  CRING_ISSUER: z.string({ error: "required: the backends' shared CHARM_SERVER_PUBLIC_URL" }).min(1),
  CRING_SERVER_KEY_FILE: z.string({
    error: 'required: the cluster key (charm_server_ed25519) to mint tokens for repairs',
  }),
  REDIS_URL: z.string({ error: 'required: e.g. redis://127.0.0.1:6379' }).url(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string({ error: 'required: the backup bucket' }).min(1),
  S3_ACCESS_KEY_ID: z.string({ error: 'required' }).min(1),
  S3_SECRET_ACCESS_KEY: z.string({ error: 'required' }).min(1),
  S3_FORCE_PATH_STYLE: bool.default(true),
  /** Backend queues this process serves (comma-separated names); all by default. */
  CRING_REPLICATOR_BACKENDS: z.string().optional(),
  CRING_REPLICATOR_S3: bool.default(true),
  CRING_REPLICATOR_CONCURRENCY: positiveInt.default(4),
  /** name=/data/dir,…: the backends whose SQLite this process may write (enables account sync). */
  CRING_BACKEND_DATA_DIRS: z.string().optional(),
  CRING_ACCOUNT_SYNC_INTERVAL_MS: positiveInt.default(5_000),
  CRING_ACCOUNT_BACKUP_INTERVAL_MS: positiveInt.default(3_600_000),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(30_000),
  CRING_METRICS_HOST: z.string().default('127.0.0.1'),
  CRING_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(35381),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface ReplicatorConfig {
  backends: Backend[];
  servedBackends: string[];
  serveS3: boolean;
  issuer: string;
  serverKeyFile: string;
  redisUrl: string;
  s3: {
    endpoint?: string;
    region: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
    forcePathStyle: boolean;
  };
  concurrency: number;
  /** Backends with a data dir here, in configured order; account sync runs when every backend has one. */
  dataDirs: { name: string; dataDir: string }[];
  accountSyncIntervalMs: number;
  accountBackupIntervalMs: number;
  shutdownDeadlineMs: number;
  metrics: { host: string; port: number };
  logLevel: string;
}

export function loadConfig(env: NodeJS.ProcessEnv): ReplicatorConfig {
  const parsed = schema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    problems.push(...parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
    throw new Error(`invalid replicator configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  }
  const e = parsed.data;
  let backends: Backend[] = [];
  try {
    backends = parseBackends(e.CRING_BACKENDS);
  } catch (err) {
    problems.push(`CRING_BACKENDS: ${(err as Error).message}`);
  }
  const served = e.CRING_REPLICATOR_BACKENDS
    ? e.CRING_REPLICATOR_BACKENDS.split(',')
        .map((name) => name.trim())
        .filter(Boolean)
    : backends.map((b) => b.name);
  for (const name of served) {
    if (!backends.some((b) => b.name === name))
      problems.push(`CRING_REPLICATOR_BACKENDS: ${name} is not in CRING_BACKENDS`);
  }
  const dirs = new Map<string, string>();
  for (const entry of (e.CRING_BACKEND_DATA_DIRS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    if (eq <= 0 || !backends.some((b) => b.name === name)) {
      problems.push(
        `CRING_BACKEND_DATA_DIRS: "${entry}" is not name=/data/dir for a backend in CRING_BACKENDS`,
      );
    } else dirs.set(name, entry.slice(eq + 1));
  }
  if (dirs.size > 0 && dirs.size !== backends.length) {
    const missing = backends.filter((b) => !dirs.has(b.name)).map((b) => b.name);
    problems.push(
      `CRING_BACKEND_DATA_DIRS: account sync needs every backend's data dir (missing: ${missing.join(', ')})`,
    );
  }
  if (problems.length > 0)
    throw new Error(`invalid replicator configuration:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  return {
    backends,
    servedBackends: served,
    serveS3: e.CRING_REPLICATOR_S3,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE,
    redisUrl: e.REDIS_URL,
    s3: {
      endpoint: e.S3_ENDPOINT,
      region: e.S3_REGION,
      bucket: e.S3_BUCKET,
      accessKeyId: e.S3_ACCESS_KEY_ID,
      secretAccessKey: e.S3_SECRET_ACCESS_KEY,
      forcePathStyle: e.S3_FORCE_PATH_STYLE,
    },
    concurrency: e.CRING_REPLICATOR_CONCURRENCY,
    dataDirs: backends
      .filter((b) => dirs.has(b.name))
      .map((b) => ({ name: b.name, dataDir: dirs.get(b.name) as string })),
    accountSyncIntervalMs: e.CRING_ACCOUNT_SYNC_INTERVAL_MS,
    accountBackupIntervalMs: e.CRING_ACCOUNT_BACKUP_INTERVAL_MS,
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    metrics: { host: e.CRING_METRICS_HOST, port: e.CRING_METRICS_PORT },
    logLevel: e.LOG_LEVEL,
  };
}
