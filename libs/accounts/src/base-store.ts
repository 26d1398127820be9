// Where a sync round keeps what it must remember between rounds: the base (merged state per user, tombstones,
// lagging backends' refs), the replica markers per backend, and the round lock. One interface, two
// implementations: Redis (production) and memory (tests, single-process tools). Both pass base-store.test.ts.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { AccountSyncLockLostError } from './errors.ts';
import { accountKeys } from './keys.ts';
import type { BaseEntry } from './merge.ts';

export interface AccountMarkers {
  /** Backend → the marker its DB held when a round last left it. */
  current: Record<string, string>;
  /** Backend → the marker a round was writing into it (set before the DB write, cleared after). */
  pending: Record<string, string>;
}

export interface AccountBaseWrite {
  /** Entries to replace, whole. */
  entries?: ReadonlyMap<string, BaseEntry>;
  markers?: Readonly<Record<string, string>>;
  pendingMarkers?: Readonly<Record<string, string>>;
  clearPendingMarkers?: readonly string[];
}

export interface AccountBaseStore {
  /** Takes the round lock for `ttlMs`; undefined when another round holds it. */
  acquireLock(ttlMs: number): Promise<string | undefined>;
  /** Extends the lock; false when `token` no longer holds it. */
  extendLock(token: string, ttlMs: number): Promise<boolean>;
  /** Releases the lock if `token` still holds it. Safe to call twice. */
  releaseLock(token: string): Promise<void>;
  readMarkers(): Promise<AccountMarkers>;
  /** The entries of these users (those that have one), or of every user. */
  readEntries(charmIds?: readonly string[]): Promise<Map<string, BaseEntry>>;
  /** Users whose entry has refs (some backend has not caught up with them). */
  laggingUsers(): Promise<string[]>;
  /** All at once, and only while `lockToken` holds the lock (else AccountSyncLockLostError). */
  write(lockToken: string, change: AccountBaseWrite): Promise<void>;
}

const isLagging = (entry: BaseEntry) => entry.refs !== undefined && Object.keys(entry.refs).length > 0;

const ACQUIRE = `return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0`;
const EXTEND = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1`;
// KEYS: lock, base, markers, pending, lagging. ARGV: token, then counted groups:
// entries (id, json, lagging 0|1), markers (backend, marker), pending (backend, marker), cleared pending (backend).
const WRITE = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local i = 2
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  if ARGV[i + 2] == '1' then redis.call('SADD', KEYS[5], ARGV[i]) else redis.call('SREM', KEYS[5], ARGV[i]) end
  i = i + 3
end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1]); i = i + 2 end
n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do redis.call('HDEL', KEYS[4], ARGV[i]); i = i + 1 end
return 1`;

export function createRedisAccountBaseStore(redis: Redis): AccountBaseStore {
  const lockKey = accountKeys.lock();
  return {
    async acquireLock(ttlMs) {
      const token = randomUUID();
      const ok = await redis.eval(ACQUIRE, 1, lockKey, token, ttlMs);
      return Number(ok) === 1 ? token : undefined;
    },
    async extendLock(token, ttlMs) {
      return Number(await redis.eval(EXTEND, 1, lockKey, token, ttlMs)) === 1;
    },
    async releaseLock(token) {
      await redis.eval(RELEASE, 1, lockKey, token);
    },
    async readMarkers() {
      const [current, pending] = await Promise.all([
        redis.hgetall(accountKeys.markers()),
        redis.hgetall(accountKeys.pendingMarkers()),
      ]);
      return { current: { ...current }, pending: { ...pending } };
    },
    async readEntries(charmIds) {
      const entries = new Map<string, BaseEntry>();
      if (charmIds === undefined) {
        const all = await redis.hgetall(accountKeys.base());
        for (const [charmId, json] of Object.entries(all))
          entries.set(charmId, JSON.parse(json) as BaseEntry);
        return entries;
      }
      const ids = [...new Set(charmIds)];
      for (let start = 0; start < ids.length; start += 1000) {
        const chunk = ids.slice(start, start + 1000);
        const values = await redis.hmget(accountKeys.base(), ...chunk);
        chunk.forEach((charmId, i) => {
          const json = values[i];
          if (json) entries.set(charmId, JSON.parse(json) as BaseEntry);
        });
      }
      return entries;
    },
    async laggingUsers() {
      return redis.smembers(accountKeys.lagging());
    },
    async write(lockToken, change) {
      const args: (string | number)[] = [lockToken];
      const entries = [...(change.entries ?? new Map<string, BaseEntry>())];
      args.push(entries.length);
      for (const [charmId, entry] of entries)
        args.push(charmId, JSON.stringify(entry), isLagging(entry) ? '1' : '0');
      const markers = Object.entries(change.markers ?? {});
      args.push(markers.length, ...markers.flat());
      const pending = Object.entries(change.pendingMarkers ?? {});
      args.push(pending.length, ...pending.flat());
      const cleared = change.clearPendingMarkers ?? [];
      args.push(cleared.length, ...cleared);
      const keys = [
        lockKey,
        accountKeys.base(),
        accountKeys.markers(),
        accountKeys.pendingMarkers(),
        accountKeys.lagging(),
      ];
      const ok = await redis.eval(WRITE, keys.length, ...keys, ...args);
      if (Number(ok) !== 1) throw new AccountSyncLockLostError();
    },
  };
}

/** The same store in process memory: for tests and one-process tools (nothing survives a restart). */
export function createMemoryAccountBaseStore(options: { now?: () => number } = {}): AccountBaseStore {
  const now = options.now ?? Date.now;
  const base = new Map<string, string>();
  const markers = new Map<string, string>();
  const pending = new Map<string, string>();
  const lagging = new Set<string>();
  let lock: { token: string; expiresAtMs: number } | undefined;
  const holds = (token: string) => lock !== undefined && lock.token === token && lock.expiresAtMs > now();
  return {
    async acquireLock(ttlMs) {
      if (lock && lock.expiresAtMs > now()) return undefined;
      lock = { token: randomUUID(), expiresAtMs: now() + ttlMs };
      return lock.token;
    },
    async extendLock(token, ttlMs) {
      if (!holds(token) || !lock) return false;
      lock.expiresAtMs = now() + ttlMs;
      return true;
    },
    async releaseLock(token) {
      if (holds(token)) lock = undefined;
    },
    async readMarkers() {
      return { current: Object.fromEntries(markers), pending: Object.fromEntries(pending) };
    },
    async readEntries(charmIds) {
      const entries = new Map<string, BaseEntry>();
      for (const charmId of charmIds ?? [...base.keys()]) {
        const json = base.get(charmId);
        if (json) entries.set(charmId, JSON.parse(json) as BaseEntry);
      }
      return entries;
    },
    async laggingUsers() {
      return [...lagging];
    },
    async write(lockToken, change) {
      if (!holds(lockToken)) throw new AccountSyncLockLostError();
      for (const [charmId, entry] of change.entries ?? []) {
        base.set(charmId, JSON.stringify(entry));
        if (isLagging(entry)) lagging.add(charmId);
        else lagging.delete(charmId);
      }
      for (const [backend, marker] of Object.entries(change.markers ?? {})) markers.set(backend, marker);
      for (const [backend, marker] of Object.entries(change.pendingMarkers ?? {}))
        pending.set(backend, marker);
      for (const backend of change.clearPendingMarkers ?? []) pending.delete(backend);
    },
  };
}
