import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { livenessKey } from './keys.ts';

/**
 * Which process holds a lock, and whether it is still alive. A process announces itself under a stable name
 * (e.g. `gateway@host:35354`) with a fresh nonce per start, refreshed well inside its TTL. A lock whose owner's
 * name now carries another nonce (the process restarted) or none (it died or froze past the TTL) is broken at
 * once by the next process that needs the path, instead of waiting for the lock's own TTL. Breaking a frozen
 * holder's lock is safe: its fencing token no longer matches, so every write it attempts later is refused.
 */
export interface ProcessLiveness {
  /** `name#nonce`, stored in every lock this process takes. */
  readonly owner: string;
  /** Announces the process (replacing an earlier incarnation's nonce) and keeps the announcement fresh. */
  start(): Promise<void>;
  stop(): Promise<void>;
}

export const DEFAULT_LIVENESS_TTL_MS = 10_000;

export function createProcessLiveness(
  redis: Redis,
  name: string,
  options: { ttlMs?: number; onError?: (err: unknown) => void } = {},
): ProcessLiveness {
  const ttlMs = options.ttlMs ?? DEFAULT_LIVENESS_TTL_MS;
  const nonce = randomBytes(8).toString('hex');
  let timer: NodeJS.Timeout | undefined;
  const announce = () => redis.set(livenessKey(name), nonce, 'PX', ttlMs);
  return {
    owner: `${name}#${nonce}`,
    async start() {
      timer ??= setInterval(() => {
        announce().catch((err) => options.onError?.(err));
      }, ttlMs / 4);
      timer.unref();
      await announce();
    },
    async stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
      // Only our own announcement: a newer incarnation's stays.
      await redis
        .eval(
          "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
          1,
          livenessKey(name),
          nonce,
        )
        .catch(() => {});
    },
  };
}

/** True when the lock owner `name#nonce` is known dead: its name is not announced, or with another nonce. */
export async function isOwnerGone(redis: Redis, owner: string): Promise<boolean> {
  const hash = owner.lastIndexOf('#');
  if (!owner || hash < 0) return false; // an anonymous owner: only its TTL ends the lock
  const current = await redis.get(livenessKey(owner.slice(0, hash)));
  return current !== owner.slice(hash + 1);
}
