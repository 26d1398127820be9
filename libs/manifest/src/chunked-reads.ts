import type { Redis } from 'ioredis';

/**
 * Fields asked for per HSCAN/SSCAN step of a whole-user read: one step of a 100,000-entry hash then blocks Redis
 * for well under a millisecond, where one HGETALL of it blocks Redis for tens of milliseconds.
 */
export const SCAN_CHUNK_FIELDS = 500;

/** A glob matching exactly the strings that start with `prefix` (Redis MATCH syntax, special characters escaped). */
export function prefixGlob(prefix: string): string {
  return `${prefix.replace(/[\\*?[\]]/g, (c) => `\\${c}`)}*`;
}

/**
 * Every field of a hash, read a chunk at a time (HSCAN COUNT), optionally only fields starting with `prefix`.
 * Not a snapshot: a field present throughout is returned (once here), a field written or removed meanwhile may or
 * may not be; callers that act on the result re-check under the path's lock, as they did with HGETALL.
 */
export async function hashInChunks(
  redis: Redis,
  key: string,
  options: { prefix?: string; count?: number } = {},
): Promise<Map<string, string>> {
  const pattern = options.prefix ? prefixGlob(options.prefix) : undefined;
  const count = options.count ?? SCAN_CHUNK_FIELDS;
  const out = new Map<string, string>();
  let cursor = '0';
  do {
    const [next, flat] = pattern
      ? await redis.hscan(key, cursor, 'MATCH', pattern, 'COUNT', count)
      : await redis.hscan(key, cursor, 'COUNT', count);
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i] as string, flat[i + 1] as string);
    cursor = next;
  } while (cursor !== '0');
  return out;
}

/** Every member of a set, read a chunk at a time (SSCAN COUNT); the same guarantees as hashInChunks. */
export async function setInChunks(redis: Redis, key: string, count = SCAN_CHUNK_FIELDS): Promise<string[]> {
  const out = new Set<string>();
  let cursor = '0';
  do {
    const [next, members] = await redis.sscan(key, cursor, 'COUNT', count);
    for (const member of members) out.add(member);
    cursor = next;
  } while (cursor !== '0');
  return [...out];
}
