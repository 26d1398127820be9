// The account merge, pure. Per user: merged = base ∪ additions − removals, where a trusted backend's additions
// and removals are its differences from its reference (what it held when the last round left it: the base, or
// its own entry in `refs` when a round skipped it or could not fully reach it). An untrusted backend (wiped,
// replaced, new) only adds, and never adds back what the base records as removed (tombstones). Deletions win:
// an unlinked key or a deleted/merged-away user is never resurrected by a backend that still has it.
import type { AccountEncryptKey, AccountPublicKey, AccountUser } from './account-state.ts';
import { compareSqlTime, normalizeUser } from './account-state.ts';

/** What the base store keeps per user. */
export interface BaseEntry {
  /** The merged state after the last round; null = deleted (a tombstone, never undone). */
  user: AccountUser | null;
  /** Public keys unlinked from this user: an untrusted backend's stale copy must not bring them back. */
  removedKeys?: string[];
  /**
   * Per backend whose state for this user differs from `user`, the state it held when the last round read it
   * (or the older reference when the round could not read it); null = it lacked the user.
   */
  refs?: Record<string, AccountUser | null>;
}

/** One readable backend's rows for the round. */
export interface BackendAccountsState {
  name: string;
  /** Its marker matches the store's record, so its differences from its reference are real changes. */
  trusted: boolean;
  users: ReadonlyMap<string, AccountUser>;
}

export interface MergeInput {
  /** The users to merge; every other user is left alone. */
  charmIds: Iterable<string>;
  base: ReadonlyMap<string, BaseEntry>;
  /** Readable backends in configured order (account primary first: it wins ties). */
  backends: readonly BackendAccountsState[];
}

export interface MergeResult {
  /** What every backend should hold per user; null = delete it everywhere. Users known nowhere are absent. */
  users: Map<string, AccountUser | null>;
  /** Per merged (existing) user, the tombstoned public keys to keep in the base. */
  removedKeys: Map<string, string[]>;
  conflicts: string[];
}

/** The state a trusted backend is compared against for one user; undefined = it lacked the user. */
export function referenceState(entry: BaseEntry | undefined, backend: string): AccountUser | undefined {
  if (!entry) return undefined;
  if (entry.refs && Object.hasOwn(entry.refs, backend)) return entry.refs[backend] ?? undefined;
  return entry.user ?? undefined;
}

const UNTRUSTED_RANK = 1_000_000;

interface UserMerge {
  user: AccountUser;
  removedKeys: string[];
  /** Per public key: -1 when it was in the base, else the rank of the backend that added it. */
  keyRanks: Map<string, number>;
  /** Rank of the backend whose name won, -1 when unchanged from the base. */
  nameRank: number;
  baseName: string | null;
}

export function mergeAccountStates(input: MergeInput): MergeResult {
  const users = new Map<string, AccountUser | null>();
  const removedKeys = new Map<string, string[]>();
  const conflicts: string[] = [];
  const merges = new Map<string, UserMerge>();
  for (const charmId of new Set(input.charmIds)) {
    const entry = input.base.get(charmId);
    if (entry && entry.user === null) {
      users.set(charmId, null);
      continue;
    }
    const merged = mergeUser(charmId, entry, input.backends, conflicts);
    if (merged === null) users.set(charmId, null);
    else if (merged) merges.set(charmId, merged);
  }
  resolveKeyOwners(merges, conflicts);
  resolveNames(merges, conflicts);
  for (const [charmId, merge] of [...merges].sort(([a], [b]) => (a < b ? -1 : 1))) {
    users.set(charmId, normalizeUser(merge.user));
    removedKeys.set(charmId, merge.removedKeys);
  }
  return { users, removedKeys, conflicts };
}

function mergeUser(
  charmId: string,
  entry: BaseEntry | undefined,
  backends: readonly BackendAccountsState[],
  conflicts: string[],
): UserMerge | null | undefined {
  const baseUser = entry?.user ?? undefined;
  const tombstones = new Set(entry?.removedKeys ?? []);
  const baseKeys = new Set(baseUser?.keys.map((k) => k.publicKey) ?? []);
  const added = new Map<string, { key: AccountPublicKey; rank: number }>();
  const removed = new Set<string>();
  const holders: { user: AccountUser; rank: number }[] = [];
  let deleted = false;
  let nameChange: { name: string | null; rank: number; backend: string } | undefined;
  let untrustedName: { name: string; rank: number } | undefined;

  backends.forEach((backend, index) => {
    const current = backend.users.get(charmId);
    if (backend.trusted) {
      const ref = referenceState(entry, backend.name);
      if (ref && !current) {
        deleted = true; // last-key unlink or merged into another user on this backend
        return;
      }
      if (!current) return;
      holders.push({ user: current, rank: index });
      const refKeys = new Set(ref?.keys.map((k) => k.publicKey) ?? []);
      const currentKeys = new Set(current.keys.map((k) => k.publicKey));
      for (const key of current.keys) {
        if (!refKeys.has(key.publicKey) && !added.has(key.publicKey)) {
          added.set(key.publicKey, { key, rank: index });
        }
      }
      for (const key of ref?.keys ?? []) if (!currentKeys.has(key.publicKey)) removed.add(key.publicKey);
      const refName = ref ? ref.name : (baseUser?.name ?? null);
      if (current.name !== refName) {
        if (!nameChange) nameChange = { name: current.name, rank: index, backend: backend.name };
        else if (nameChange.name !== current.name) {
          conflicts.push(
            `name of ${charmId}: ${backend.name} changed it to ${JSON.stringify(current.name)}, ` +
              `${nameChange.backend} to ${JSON.stringify(nameChange.name)}; kept ${JSON.stringify(nameChange.name)}`,
          );
        }
      }
    } else {
      if (!current) return;
      const rank = UNTRUSTED_RANK + index;
      holders.push({ user: current, rank });
      for (const key of current.keys) {
        if (baseKeys.has(key.publicKey) || tombstones.has(key.publicKey) || added.has(key.publicKey))
          continue;
        added.set(key.publicKey, { key, rank });
      }
      if (!untrustedName && current.name !== null) untrustedName = { name: current.name, rank };
    }
  });

  if (deleted) return null;
  holders.sort((a, b) => a.rank - b.rank);
  const first = holders[0]?.user;
  const template = baseUser ?? first;
  if (!template) return undefined;

  const keys = new Map<string, AccountPublicKey>();
  const keyRanks = new Map<string, number>();
  for (const key of baseUser?.keys ?? []) {
    keys.set(key.publicKey, { ...key, encryptKeys: [] });
    keyRanks.set(key.publicKey, -1);
  }
  for (const [publicKey, { key, rank }] of added) {
    if (keys.has(publicKey)) continue;
    keys.set(publicKey, { ...key, encryptKeys: [] });
    keyRanks.set(publicKey, rank);
  }
  for (const publicKey of removed) {
    keys.delete(publicKey);
    keyRanks.delete(publicKey);
  }

  // Encrypt keys are only ever added (they go with their public key or user): the union, first source wins.
  const sources = [...(baseUser ? [{ user: baseUser, name: 'base' }] : [])];
  for (const holder of holders) {
    sources.push({ user: holder.user, name: backends[holder.rank % UNTRUSTED_RANK]?.name ?? '?' });
  }
  for (const [publicKey, key] of keys) {
    const byId = new Map<string, AccountEncryptKey>();
    for (const source of sources) {
      const sourceKey = source.user.keys.find((k) => k.publicKey === publicKey);
      for (const encryptKey of sourceKey?.encryptKeys ?? []) {
        const known = byId.get(encryptKey.globalId);
        if (!known) {
          byId.set(encryptKey.globalId, encryptKey);
          key.encryptKeys.push(encryptKey);
        } else if (
          known.createdAt !== encryptKey.createdAt ||
          known.encryptedKey !== encryptKey.encryptedKey
        ) {
          conflicts.push(
            `encrypt key ${encryptKey.globalId} of ${charmId} differs on ${source.name} ` +
              `(created_at ${JSON.stringify(encryptKey.createdAt)} vs ${JSON.stringify(known.createdAt)}); not rewritten`,
          );
        }
      }
    }
    key.encryptKeys.sort((a, b) => compareSqlTime(a.createdAt, b.createdAt)); // stable: base order first
  }

  const seqs = new Map<string, number>();
  for (const source of sources) {
    for (const { name, seq } of source.user.seqs) seqs.set(name, Math.max(seqs.get(name) ?? seq, seq));
  }

  let name = baseUser ? baseUser.name : null;
  let nameRank = -1;
  if (nameChange) {
    name = nameChange.name;
    nameRank = nameChange.rank;
  } else if (!baseUser && untrustedName) {
    name = untrustedName.name;
    nameRank = untrustedName.rank;
  }

  const tombstoned = new Set([...tombstones, ...removed]);
  for (const publicKey of keys.keys()) tombstoned.delete(publicKey);

  return {
    user: {
      charmId,
      name,
      email: template.email,
      bio: template.bio,
      createdAt: template.createdAt,
      keys: [...keys.values()],
      seqs: [...seqs].map(([seqName, seq]) => ({ name: seqName, seq })),
    },
    removedKeys: [...tombstoned].sort(),
    keyRanks,
    nameRank,
    baseName: baseUser?.name ?? null,
  };
}

/** A public key belongs to one user per backend (charm looks users up by key): the base owner, else the first. */
function resolveKeyOwners(merges: Map<string, UserMerge>, conflicts: string[]): void {
  const claims = new Map<string, { charmId: string; rank: number }[]>();
  for (const [charmId, merge] of merges) {
    for (const [publicKey, rank] of merge.keyRanks) {
      const list = claims.get(publicKey) ?? [];
      list.push({ charmId, rank });
      claims.set(publicKey, list);
    }
  }
  for (const [publicKey, list] of claims) {
    if (list.length < 2) continue;
    list.sort((a, b) => a.rank - b.rank || (a.charmId < b.charmId ? -1 : 1));
    const [winner, ...losers] = list;
    for (const loser of losers) {
      const merge = merges.get(loser.charmId);
      if (!merge) continue;
      merge.user.keys = merge.user.keys.filter((k) => k.publicKey !== publicKey);
      merge.keyRanks.delete(publicKey);
      conflicts.push(
        `public key ${shortKey(publicKey)} is held by ${winner?.charmId} and ${loser.charmId}; kept for ${winner?.charmId}`,
      );
    }
  }
}

/** Names are unique per backend, compared case-insensitively as charm does (LIKE). */
function resolveNames(merges: Map<string, UserMerge>, conflicts: string[]): void {
  const byName = new Map<string, string[]>();
  for (const [charmId, merge] of merges) {
    if (merge.user.name === null) continue;
    const folded = foldName(merge.user.name);
    byName.set(folded, [...(byName.get(folded) ?? []), charmId]);
  }
  const taken = new Set(byName.keys());
  for (const [folded, charmIds] of byName) {
    if (charmIds.length < 2) continue;
    const ranked = charmIds
      .map((charmId) => ({ charmId, merge: merges.get(charmId) as UserMerge }))
      .sort(
        (a, b) =>
          a.merge.nameRank - b.merge.nameRank || (a.charmId < b.charmId ? -1 : a.charmId > b.charmId ? 1 : 0),
      );
    const [winner, ...losers] = ranked;
    for (const loser of losers) {
      const wanted = loser.merge.user.name;
      const fallback = loser.merge.baseName;
      const fallbackFree =
        fallback !== null && foldName(fallback) !== folded && !taken.has(foldName(fallback));
      loser.merge.user.name = fallbackFree ? fallback : null;
      if (fallbackFree && fallback !== null) taken.add(foldName(fallback));
      conflicts.push(
        `name ${JSON.stringify(wanted)} is wanted by ${winner?.charmId} and ${loser.charmId}; ` +
          `kept for ${winner?.charmId}, ${loser.charmId} keeps ${JSON.stringify(loser.merge.user.name)}`,
      );
    }
  }
}

/** charm compares names with SQL LIKE: ASCII case-insensitive. */
export function foldName(name: string): string {
  return name.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

export function shortKey(publicKey: string): string {
  const [type, body = ''] = publicKey.split(' ');
  return `${type} …${body.slice(-12)}`;
}
