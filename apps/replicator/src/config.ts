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
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(30_000),
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
  shutdownDeadlineMs: number;
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
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
