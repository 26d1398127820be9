import type { Backend } from '@cring/charm';
import {
  backendsFrom,
  dataDirsFrom,
  issuesOf,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from '@cring/config';
import { z } from 'zod';

const schema = z.object({ ...sharedEnvFields, REDIS_URL: z.string().url().optional() });

export class UsageError extends Error {}

export interface CringConfig {
  backends: Backend[];
  dataDirs: Map<string, string>;
  redisUrl?: string;
  s3?: S3Settings;
}

/** The same environment as the other processes; each command says which parts it needs. */
export function loadConfig(env: NodeJS.ProcessEnv): CringConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new UsageError(issuesOf(parsed.error).join('\n'));
  const e = parsed.data;
  const problems: string[] = [];
  const backends = backendsFrom(e, problems);
  const dataDirs = dataDirsFrom(e, backends, problems, { all: false });
  const s3 = s3From(e, problems, { required: false });
  if (problems.length > 0) throw new UsageError(problems.join('\n'));
  return { backends, dataDirs: new Map(dataDirs.map((d) => [d.name, d.dataDir])), redisUrl: e.REDIS_URL, s3 };
}

export function dataDirOf(config: CringConfig, name: string): { name: string; dataDir: string } {
  const dataDir = config.dataDirs.get(name);
  if (!dataDir)
    throw new UsageError(`no data dir for backend "${name}": add ${name}=/path to CRING_BACKEND_DATA_DIRS`);
  return { name, dataDir };
}
