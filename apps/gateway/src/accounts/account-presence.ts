import { accountKeys } from '@cring/accounts';
import { ACCOUNTS_QUEUE, type AccountSyncJob, QUEUE_PREFIX } from '@cring/jobs';
import type { Logger } from '@cring/service-runtime';
import { Queue, QueueEvents } from 'bullmq';
import type { Redis, RedisOptions } from 'ioredis';

const MAX_CACHED_USERS = 100_000;

export interface AccountPresence {
  /**
   * Resolves once the user's account rows are on every reachable backend (a user is created over SSH on one
   * backend only). The first request of a new user waits for an account sync round limited to them; later
   * requests cost a Set lookup. Never throws: on timeout the request goes on and may meet a 404 "missing user".
   */
  ensure(charmId: string): Promise<void>;
  /** Runs a sync round for the user now, cache or not: after a link, the new key must be everywhere. */
  refresh(charmId: string): Promise<void>;
  close(): Promise<void>;
}

export function createAccountPresence(options: {
  redis: Redis;
  /** Opens another connection to the same Redis (waiting on a job needs a blocking one). */
  connect: (options: RedisOptions) => Redis;
  waitMs: number;
  logger: Logger;
}): AccountPresence {
  const known = new Set<string>();
  const inFlight = new Map<string, Promise<void>>();
  let queue: Queue<AccountSyncJob> | undefined;
  let events: QueueEvents | undefined;

  const remember = (charmId: string) => {
    if (known.size >= MAX_CACHED_USERS) known.clear();
    known.add(charmId);
  };

  async function syncNow(charmId: string, force = false): Promise<void> {
    try {
      if (!force && (await options.redis.sismember(accountKeys.synced(), charmId)) === 1)
        return remember(charmId);
      queue ??= new Queue<AccountSyncJob>(ACCOUNTS_QUEUE, {
        connection: options.redis,
        prefix: QUEUE_PREFIX,
      });
      // Waiting on a job needs a blocking connection of its own.
      events ??= new QueueEvents(ACCOUNTS_QUEUE, {
        connection: options.connect({ maxRetriesPerRequest: null }),
        prefix: QUEUE_PREFIX,
      });
      const job = await queue.add(
        'account-sync',
        { kind: 'account-sync', charmIds: [charmId] },
        // A refresh must not join a round that started before the change it is for.
        {
          jobId: force ? `refresh-${charmId}-${Date.now()}` : `user-${charmId}`,
          removeOnComplete: true,
          removeOnFail: true,
        },
      );
      await job.waitUntilFinished(events, options.waitMs);
      if ((await options.redis.sismember(accountKeys.synced(), charmId)) === 1) remember(charmId);
      else options.logger.warn({ charmId }, 'account not on every backend yet after a sync round');
    } catch (err) {
      options.logger.warn({ charmId, err: (err as Error).message }, 'account sync did not answer; going on');
    }
  }

  return {
    ensure(charmId) {
      if (known.has(charmId)) return Promise.resolve();
      let pending = inFlight.get(charmId);
      if (!pending) {
        pending = syncNow(charmId).finally(() => inFlight.delete(charmId));
        inFlight.set(charmId, pending);
      }
      return pending;
    },
    async refresh(charmId) {
      await inFlight.get(charmId);
      await syncNow(charmId, true);
    },
    async close() {
      await events?.close();
      await queue?.close();
    },
  };
}
