import type { S3Settings } from '@cring/backup-store';
import { type Backend, parseBackends } from '@cring/charm';
import { type ZodError, z } from 'zod';

/** Explicit booleans: only "true" and "false" are accepted. */
export const booleanField = z
  .enum(['true', 'false'], { error: 'expected "true" or "false"' })
  .transform((v) => v === 'true');

/** Fields with the same name, meaning and default in every process; each app spreads them into its schema. */
export const sharedEnvFields = {
  CRING_BACKENDS: z.string({ error: 'required: name=httpUrl[|sshHost:sshPort],… (account primary first)' }),
  /** name=/data/dir,…: backends whose SQLite this process can reach (account sync, scans, restores). */
  CRING_BACKEND_DATA_DIRS: z.string().optional(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().min(1).optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: booleanField.default(true),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
};

export const requiredIssuer = z
  .string({ error: "required: the backends' shared CHARM_SERVER_PUBLIC_URL (the JWT issuer)" })
  .min(1);
export const requiredRedisUrl = z.string({ error: 'required: e.g. redis://127.0.0.1:6379' }).url();

const sharedEnvSchema = z.object(sharedEnvFields);
type SharedEnv = z.infer<typeof sharedEnvSchema>;

/** One line per problem, `KEY: what is wrong`. */
export function issuesOf(error: ZodError): string[] {
  return error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`);
}

export function backendsFrom(env: Pick<SharedEnv, 'CRING_BACKENDS'>, problems: string[]): Backend[] {
  try {
    return parseBackends(env.CRING_BACKENDS);
  } catch (err) {
    problems.push(`CRING_BACKENDS: ${(err as Error).message}`);
    return [];
  }
}

export type { S3Settings };

/** The S3 settings, or undefined when they are not set (a problem instead when `required`). */
export function s3From(
  env: SharedEnv,
  problems: string[],
  options: { required: boolean },
): S3Settings | undefined {
  const { S3_BUCKET: bucket, S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = env;
  if (!bucket || !accessKeyId || !secretAccessKey) {
    if (options.required || bucket || accessKeyId || secretAccessKey) {
      problems.push(
        'S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: required together (the backup bucket and its credentials)',
      );
    }
    return undefined;
  }
  return {
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    bucket,
    accessKeyId,
    secretAccessKey,
    forcePathStyle: env.S3_FORCE_PATH_STYLE,
  };
}

/**
 * CRING_BACKEND_DATA_DIRS in configured backend order. With `all`, a partial list is a problem (account sync
 * must see every backend's accounts, or it would take a missing backend for an empty one).
 */
export function dataDirsFrom(
  env: Pick<SharedEnv, 'CRING_BACKEND_DATA_DIRS'>,
  backends: readonly Backend[],
  problems: string[],
  options: { all: boolean },
): { name: string; dataDir: string }[] {
  const dirs = new Map<string, string>();
  for (const entry of (env.CRING_BACKEND_DATA_DIRS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    if (eq <= 0 || entry.length === eq + 1)
      problems.push(`CRING_BACKEND_DATA_DIRS: "${entry}" is not name=/data/dir`);
    else if (!backends.some((b) => b.name === name))
      problems.push(`CRING_BACKEND_DATA_DIRS: ${name} is not a backend of CRING_BACKENDS`);
    else dirs.set(name, entry.slice(eq + 1));
  }
  if (options.all && dirs.size > 0 && dirs.size !== backends.length) {
    const missing = backends.filter((b) => !dirs.has(b.name)).map((b) => b.name);
    problems.push(
      `CRING_BACKEND_DATA_DIRS: every backend's data dir is needed (missing: ${missing.join(', ')})`,
    );
  }
  return backends
    .filter((b) => dirs.has(b.name))
    .map((b) => ({ name: b.name, dataDir: dirs.get(b.name) as string }));
}
