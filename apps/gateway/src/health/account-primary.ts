// The account primary of the whole cluster, held as a lease in Redis so that every gateway routes SSH (sign-ups,
// `charm link`, key changes) to the same backend:
//
// | seen                                              | done                                         | why safe                                                  |
// | ------------------------------------------------- | -------------------------------------------- | --------------------------------------------------------- |
// | no lease (first start, or expired)                | take it for the first SSH-healthy backend     | SET NX: one gateway wins, the others read its choice      |
// | lease on a backend this gateway sees healthy      | renew it (health round), route to it          | sticky: a backend that comes back never takes it back     |
// | lease on a backend this gateway sees down,        | move it (compare-and-set from that backend)   | two gateways moving at once both end on the winner's pick |
// |   or whose SSH connect just failed                |   to the first healthy backend not failed     |                                                           |
// | Redis unreachable                                 | route by this gateway's own view (first       | availability; writes need Redis anyway; logged            |
// |                                                   |   healthy) until Redis answers again          |                                                           |
//
// Every new SSH connection reads the lease (one GET), so at any instant every gateway that can reach Redis routes
// to the one backend the lease names. Sticky matters: a new user created on the stand-in exists there only until
// the next account sync round, so moving back at once would send their next login to a backend without them.
import { accountKeys } from '@cring/accounts';
import type { Backend } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import type { Redis } from 'ioredis';

// KEYS: lease. ARGV: expected holder ('' = none), new holder, ttl ms. Returns the holder afterwards.
const MOVE = `
local current = redis.call('GET', KEYS[1])
if (current or '') ~= ARGV[1] then return current end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]`;
// KEYS: lease. ARGV: holder, ttl ms. Renews only while that holder still has the lease.
const RENEW = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

export interface AccountPrimary {
  /**
   * Where a new SSH connection goes: the lease holder, after moving the lease away from `failed` (backends whose
   * connect just failed for this connection). Undefined when no backend is left to try.
   */
  choose(failed?: readonly string[]): Promise<Backend | undefined>;
  /** Run after each health round: takes a missing lease, renews a healthy holder's, moves a dead holder's. */
  maintain(): Promise<void>;
  /** The holder as last seen (for status pages); undefined before the first answer. */
  current(): string | undefined;
}

export function createAccountPrimary(options: {
  redis: Redis;
  backends: readonly Backend[];
  isSshHealthy: (name: string) => boolean;
  /** Lease lifetime; renewed every health round by every gateway that sees the holder healthy. */
  leaseTtlMs: number;
  logger: Logger;
}): AccountPrimary {
  const { redis, backends, leaseTtlMs } = options;
  const log = options.logger.child({ component: 'account-primary' });
  const key = accountKeys.primary();
  const byName = new Map(backends.map((b) => [b.name, b]));
  let lastSeen: string | undefined;
  let redisDown = false;

  const firstHealthy = (excluded: ReadonlySet<string>) =>
    backends.find((b) => !excluded.has(b.name) && options.isSshHealthy(b.name)) ??
    backends.find((b) => !excluded.has(b.name));

  const seen = (holder: string | null | undefined): string | undefined => {
    if (holder && holder !== lastSeen) log.info({ backend: holder, previous: lastSeen }, 'account primary');
    lastSeen = holder ?? undefined;
    if (redisDown) {
      redisDown = false;
      log.info('redis answers again: routing SSH by the cluster-wide lease');
    }
    return lastSeen;
  };

  /** Moves the lease from `from` ('' = no lease) to `to`, unless someone else moved it first. */
  async function move(from: string, to: string): Promise<string | undefined> {
    const holder = (await redis.eval(MOVE, 1, key, from, to, leaseTtlMs)) as string | null;
    if (holder === to && from !== to) log.warn({ from: from || null, to }, 'account primary lease moved');
    return seen(holder);
  }

  /** The lease holder after replacing a missing, unknown or excluded one. */
  async function settle(excluded: ReadonlySet<string>): Promise<string | undefined> {
    let holder = seen((await redis.get(key)) ?? undefined);
    for (let round = 0; round <= backends.length; round++) {
      const usable = holder !== undefined && byName.has(holder) && !excluded.has(holder);
      if (usable) return holder;
      const next = firstHealthy(excluded);
      if (!next) return undefined;
      holder = await move(holder ?? '', next.name);
    }
    return undefined;
  }

  function withoutRedis(err: unknown, excluded: ReadonlySet<string>): Backend | undefined {
    if (!redisDown) {
      redisDown = true;
      log.warn(
        { err: (err as Error).message },
        "redis unreachable: routing SSH by this gateway's own health view",
      );
    }
    return firstHealthy(excluded);
  }

  return {
    async choose(failed = []) {
      const excluded = new Set(failed);
      try {
        // Only a connect that just failed moves the lease here; a holder this gateway merely believes down is
        // still tried (its view may be stale) and moved by the health round.
        const holder = await settle(excluded);
        return holder === undefined ? undefined : byName.get(holder);
      } catch (err) {
        return withoutRedis(err, excluded);
      }
    },
    async maintain() {
      try {
        const unhealthy = new Set(backends.filter((b) => !options.isSshHealthy(b.name)).map((b) => b.name));
        // With no backend healthy there is nowhere better to move it: keep the holder.
        const holder = await settle(unhealthy.size === backends.length ? new Set() : unhealthy);
        if (holder !== undefined) await redis.eval(RENEW, 1, key, holder, leaseTtlMs);
      } catch (err) {
        withoutRedis(err, new Set());
      }
    },
    current: () => lastSeen,
  };
}
