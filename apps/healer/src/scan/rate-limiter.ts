import { setTimeout as sleep } from 'node:timers/promises';

/** Spaces requests evenly so that no more than `perSecond` start in any second; callers await take() first. */
export interface RateLimiter {
  readonly perSecond: number;
  take(): Promise<void>;
}

export function createRateLimiter(
  perSecond: number,
  clock: { now(): number; sleep(ms: number): Promise<unknown> } = { now: () => performance.now(), sleep },
): RateLimiter {
  if (!(perSecond > 0)) throw new RangeError(`requests per second must be above 0, got ${perSecond}`);
  const intervalMs = 1000 / perSecond;
  let nextSlotMs = Number.NEGATIVE_INFINITY;
  return {
    perSecond,
    async take() {
      const now = clock.now();
      const slot = Math.max(now, nextSlotMs);
      nextSlotMs = slot + intervalMs;
      if (slot > now) await clock.sleep(slot - now);
    },
  };
}

/** Runs at most `limit` tasks at once, in the order they were submitted. */
export interface TaskPool {
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createTaskPool(limit: number): TaskPool {
  if (!(limit >= 1)) throw new RangeError(`concurrency must be at least 1, got ${limit}`);
  let active = 0;
  const waiting: (() => void)[] = [];
  const release = () => {
    active--;
    waiting.shift()?.();
  };
  return {
    async run(task) {
      if (active >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
      active++;
      try {
        return await task();
      } finally {
        release();
      }
    },
  };
}
