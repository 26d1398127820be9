// The Redis every process shares (manifest, locks, BullMQ queues, account sync state), and the one function that
// connects to it. Either one Redis (REDIS_URL) or a primary found through Redis Sentinel (REDIS_SENTINELS), which
// survives losing one Redis node: ioredis asks the sentinels for the current primary and follows a failover.
import { Redis, type RedisOptions } from 'ioredis';
import { z } from 'zod';
import { FailoverFollowingConnector } from './sentinel-failover.ts';

export const redisEnvFields = {
  /** One Redis: redis://[:password@]host:port[/db]. */
  REDIS_URL: z.string().url().optional(),
  /** Redis Sentinel instead: host:port,host:port,… (three or more, on different hosts). */
  REDIS_SENTINELS: z.string().optional(),
  /** The name the sentinels monitor the primary under (`sentinel monitor <name> …`). */
  REDIS_SENTINEL_MASTER: z.string().min(1).default('cring'),
  REDIS_PASSWORD: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /** Replicas a manifest commit waits for (WAIT) before the client hears OK; default 1 with Sentinel, else 0. */
  CRING_REDIS_WAIT_REPLICAS: z.coerce.number().int().min(0).optional(),
  CRING_REDIS_WAIT_MS: z.coerce.number().int().positive().default(1_000),
};

const redisEnvSchema = z.object(redisEnvFields);
type RedisEnv = z.infer<typeof redisEnvSchema>;

export interface RedisSettings {
  url?: string;
  sentinels?: { host: string; port: number }[];
  masterName: string;
  password?: string;
  sentinelPassword?: string;
  /** What a commit waits for before it is acknowledged: `WAIT replicas timeoutMs`. */
  replicaWait: { replicas: number; timeoutMs: number };
}

const MISSING =
  'REDIS_URL or REDIS_SENTINELS: required (e.g. redis://127.0.0.1:6379, or host:26379,… for Sentinel)';

/** The "no Redis at all" problem, from the raw environment: listed with the schema's own problems. */
export function missingRedis(env: NodeJS.ProcessEnv): string[] {
  return env.REDIS_URL || env.REDIS_SENTINELS ? [] : [MISSING];
}

/** The Redis settings, or undefined when none are set (a problem instead when `required`). */
export function redisFrom(
  env: RedisEnv,
  problems: string[],
  options: { required: boolean },
): RedisSettings | undefined {
  if (env.REDIS_URL && env.REDIS_SENTINELS) {
    problems.push(
      'REDIS_URL and REDIS_SENTINELS: set one (a single Redis, or sentinels that find the primary)',
    );
    return undefined;
  }
  const common = {
    masterName: env.REDIS_SENTINEL_MASTER,
    password: env.REDIS_PASSWORD,
    sentinelPassword: env.REDIS_SENTINEL_PASSWORD,
  };
  if (env.REDIS_URL) {
    return {
      ...common,
      url: env.REDIS_URL,
      replicaWait: { replicas: env.CRING_REDIS_WAIT_REPLICAS ?? 0, timeoutMs: env.CRING_REDIS_WAIT_MS },
    };
  }
  if (env.REDIS_SENTINELS) {
    const sentinels: { host: string; port: number }[] = [];
    for (const entry of env.REDIS_SENTINELS.split(',')
      .map((x) => x.trim())
      .filter(Boolean)) {
      const colon = entry.lastIndexOf(':');
      const port = Number(entry.slice(colon + 1));
      if (colon <= 0 || !Number.isInteger(port) || port <= 0 || port > 65535)
        problems.push(`REDIS_SENTINELS: "${entry}" is not host:port`);
      else sentinels.push({ host: entry.slice(0, colon), port });
    }
    if (sentinels.length === 0) problems.push('REDIS_SENTINELS: no sentinel listed');
    return {
      ...common,
      sentinels,
      replicaWait: { replicas: env.CRING_REDIS_WAIT_REPLICAS ?? 1, timeoutMs: env.CRING_REDIS_WAIT_MS },
    };
  }
  if (options.required) {
    problems.push(MISSING);
  }
  return undefined;
}

/** Where Redis is, for messages and logs (no password). */
export function describeRedis(settings: RedisSettings): string {
  if (settings.sentinels) {
    const list = settings.sentinels.map((s) => `${s.host}:${s.port}`).join(',');
    return `the primary "${settings.masterName}" of sentinels ${list}`;
  }
  const url = new URL(settings.url as string);
  if (url.password) url.password = '***';
  return url.toString();
}

/**
 * Every Redis connection of every process is made here (the manifest and locks, BullMQ's workers and queues,
 * blocking connections), so a single Redis and Sentinel are configured once. `options` set the connection's
 * behaviour (retries, offline queue, lazy connect).
 */
export function connectRedis(settings: RedisSettings, options: RedisOptions = {}): Redis {
  if (settings.sentinels) {
    return new Redis({
      ...options,
      sentinels: settings.sentinels,
      name: settings.masterName,
      password: settings.password,
      sentinelPassword: settings.sentinelPassword,
      // Learn of a failover from the sentinels at once, rather than only when the old primary's socket breaks;
      // ioredis' own detector can end a client for good (see sentinel-failover.ts).
      Connector: FailoverFollowingConnector,
      failoverDetector: false,
    });
  }
  return new Redis(settings.url as string, {
    ...options,
    ...(settings.password ? { password: settings.password } : {}),
  });
}
