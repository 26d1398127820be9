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
  /** name=http://agent:35390,…: the agent beside each backend (account sync, user lists, restores, mtimes). */
  CRING_AGENTS: z.string().optional(),
  // Central processes never open a backend's data dir any more: say so instead of silently ignoring it.
  CRING_BACKEND_DATA_DIRS: z
    .never({
      error:
        'no longer read: run an agent beside each backend and set CRING_AGENTS=name=http://agent:35390,…',
    })
    .optional(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().min(1).optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: booleanField.default(true),
  /** Start against a bucket without versioning (a loud warning instead of a refusal): no history, no restore. */
  CRING_S3_ALLOW_UNVERSIONED: booleanField.default(false),
  /** Days a noncurrent object version is kept before the healer prunes it; unset keeps every version. */
  CRING_S3_RETENTION_DAYS: z.coerce.number().int().positive().optional(),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
};

export const requiredIssuer = z
  .string({ error: "required: the backends' shared CHARM_SERVER_PUBLIC_URL (the JWT issuer)" })
  .min(1);
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
    allowUnversioned: env.CRING_S3_ALLOW_UNVERSIONED,
    retentionDays: env.CRING_S3_RETENTION_DAYS,
  };
}

/** Where the agent beside a backend answers. */
export interface AgentAddress {
  name: string;
  url: string;
}

/**
 * CRING_AGENTS in configured backend order: the one place a backend's agent is looked up. With `all`, a partial
 * list is a problem (account sync must see every backend's accounts, or it would take a missing backend for an
 * empty one).
 */
export function agentsFrom(
  env: Pick<SharedEnv, 'CRING_AGENTS'>,
  backends: readonly Backend[],
  problems: string[],
  options: { all: boolean },
): AgentAddress[] {
  const urls = new Map<string, string>();
  for (const entry of (env.CRING_AGENTS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    const url = entry.slice(eq + 1);
    if (eq <= 0 || !/^https?:\/\/[^/]+\/?$/.test(url))
      problems.push(`CRING_AGENTS: "${entry}" is not name=http://host:port`);
    else if (!backends.some((b) => b.name === name))
      problems.push(`CRING_AGENTS: ${name} is not a backend of CRING_BACKENDS`);
    else urls.set(name, url.replace(/\/$/, ''));
  }
  if (options.all && urls.size > 0 && urls.size !== backends.length) {
    const missing = backends.filter((b) => !urls.has(b.name)).map((b) => b.name);
    problems.push(`CRING_AGENTS: every backend's agent is needed (missing: ${missing.join(', ')})`);
  }
  return backends
    .filter((b) => urls.has(b.name))
    .map((b) => ({ name: b.name, url: urls.get(b.name) as string }));
}
