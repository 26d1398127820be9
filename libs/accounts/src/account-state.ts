// One user's account state as every backend must hold it, independent of any backend's integer ids.
// Plain JSON values, so the base store can keep them as they are.

/** A created_at exactly as SQLite holds it. Copied verbatim, so every backend sorts encrypt keys alike. */
export type SqlTime = string | number | null;

export interface AccountEncryptKey {
  globalId: string;
  encryptedKey: string;
  createdAt: SqlTime;
}

export interface AccountPublicKey {
  /** `type base64`, exactly as charm stores it. */
  publicKey: string;
  createdAt: SqlTime;
  /** In charm's order: created_at ascending, ties in insertion order (decides the client's keys[0]). */
  encryptKeys: AccountEncryptKey[];
}

export interface AccountSeq {
  name: string;
  seq: number;
}

export interface AccountUser {
  charmId: string;
  name: string | null;
  email: string | null;
  bio: string | null;
  createdAt: SqlTime;
  /** Sorted by publicKey. */
  keys: AccountPublicKey[];
  /** Sorted by name. */
  seqs: AccountSeq[];
}

/** SQLite's ORDER BY for a timestamp column: NULL < numbers < text (binary). */
export function compareSqlTime(a: SqlTime, b: SqlTime): number {
  const rank = (v: SqlTime) => (v === null ? 0 : typeof v === 'number' ? 1 : 2);
  const byRank = rank(a) - rank(b);
  if (byRank !== 0) return byRank;
  if (a === null || b === null) return 0;
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

const byString = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Sorts keys and seqs and puts encrypt keys in charm's order (stable for equal created_at). */
export function normalizeUser(user: AccountUser): AccountUser {
  return {
    ...user,
    keys: [...user.keys]
      .map((key) => ({
        ...key,
        encryptKeys: [...key.encryptKeys].sort((a, b) => compareSqlTime(a.createdAt, b.createdAt)),
      }))
      .sort((a, b) => byString(a.publicKey, b.publicKey)),
    seqs: [...user.seqs].sort((a, b) => byString(a.name, b.name)),
  };
}

/** Every field, encrypt keys compared as a set: "did anything about this user change?" */
export function sameUser(a: AccountUser | undefined, b: AccountUser | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return fullFingerprint(a) === fullFingerprint(b);
}

/**
 * Only what a sync round changes on an existing user: the key set, the encrypt key ids per key, the name and
 * the seqs. created_at, email, bio and encrypt key bodies are never rewritten, so they do not count.
 */
export function sameShape(a: AccountUser | undefined, b: AccountUser | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return shapeFingerprint(a) === shapeFingerprint(b);
}

function shapeFingerprint(user: AccountUser): string {
  const u = normalizeUser(user);
  return JSON.stringify([
    u.charmId,
    u.name,
    u.keys.map((k) => [k.publicKey, k.encryptKeys.map((e) => e.globalId).sort(byString)]),
    u.seqs.map((s) => [s.name, s.seq]),
  ]);
}

function fullFingerprint(user: AccountUser): string {
  const u = normalizeUser(user);
  return JSON.stringify([
    u.charmId,
    u.name,
    u.email,
    u.bio,
    u.createdAt,
    u.keys.map((k) => [
      k.publicKey,
      k.createdAt,
      [...k.encryptKeys]
        .sort((a, b) => byString(a.globalId, b.globalId))
        .map((e) => [e.globalId, e.encryptedKey, e.createdAt]),
    ]),
    u.seqs.map((s) => [s.name, s.seq]),
  ]);
}
