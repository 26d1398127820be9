import { type Backend, parseBackends } from '@cring/charm';
import { z } from 'zod';

const schema = z.object({
  CRING_BACKENDS: z.string({ error: 'required: name=httpUrl[|sshHost:sshPort],…' }),
  CRING_BACKEND_DATA_DIRS: z.string().optional(),
  REDIS_URL: z.string().url().optional(),
  S3_ENDPOINT: z.string().url().optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_BUCKET: z.string().optional(),
  S3_ACCESS_KEY_ID: z.string().optional(),
  S3_SECRET_ACCESS_KEY: z.string().optional(),
  S3_FORCE_PATH_STYLE: z.enum(['true', 'false']).default('true'),
});

export class UsageError extends Error {}

export interface CringConfig {
  backends: Backend[];
  dataDirs: Map<string, string>;
  redisUrl?: string;
  s3?: {
    endpoint?: string;
    region: string;
    bucket: string;
    accessKeyId: string;
    secretAccessKey: string;
    forcePathStyle: boolean;
  };
}

/** The same environment as the other processes; each command says which parts it needs. */
export function loadConfig(env: NodeJS.ProcessEnv): CringConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new UsageError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n'));
  }
  const e = parsed.data;
  let backends: Backend[];
  try {
    backends = parseBackends(e.CRING_BACKENDS);
  } catch (err) {
    throw new UsageError(`CRING_BACKENDS: ${(err as Error).message}`);
  }
  const dataDirs = new Map<string, string>();
  for (const entry of (e.CRING_BACKEND_DATA_DIRS ?? '')
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`CRING_BACKEND_DATA_DIRS: "${entry}" is not name=/data/dir`);
    dataDirs.set(entry.slice(0, eq), entry.slice(eq + 1));
  }
  const s3 =
    e.S3_BUCKET && e.S3_ACCESS_KEY_ID && e.S3_SECRET_ACCESS_KEY
      ? {
          endpoint: e.S3_ENDPOINT,
          region: e.S3_REGION,
          bucket: e.S3_BUCKET,
          accessKeyId: e.S3_ACCESS_KEY_ID,
          secretAccessKey: e.S3_SECRET_ACCESS_KEY,
          forcePathStyle: e.S3_FORCE_PATH_STYLE === 'true',
        }
      : undefined;
  return { backends, dataDirs, redisUrl: e.REDIS_URL, s3 };
}

export function dataDirOf(config: CringConfig, name: string): { name: string; dataDir: string } {
  const dataDir = config.dataDirs.get(name);
  if (!dataDir)
    throw new UsageError(`no data dir for backend "${name}": add ${name}=/path to CRING_BACKEND_DATA_DIRS`);
  return { name, dataDir };
}
