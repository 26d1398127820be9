// One account sync round over every backend DB. Rules (see merge.ts for the merge itself):
// - Trust. A backend is trusted when the marker in its DB equals the one recorded for it (or the one a crashed
//   round was writing). Every round that applies to a trusted backend rotates its marker in the same
//   transaction, so a DB restored from an older copy, wiped or replaced no longer matches: it is untrusted,
//   adds only, and is adopted (new marker recorded) only by a full round that brought it fully up to date.
// - References. The base holds the merged state; a backend that a round could not read, or could not bring
//   fully to the merged state, gets a per-user ref in the base holding what it had. Its next diff is against
//   that, so a backend that missed a round neither removes what others added nor re-adds what others removed.
// - Crashes. The base is written after the backends: re-reading a backend that already took the round gives
//   the same differences again, so a crash in between only repeats work. The pending marker, recorded before
//   the DB writes, keeps a backend that took the round trusted across such a crash.
// - Where. Each backend's rows are read and applied through BackendAccounts (its agent, or a DB file here);
//   an apply whose answer was lost (a transport error) may have committed, so its pending marker is kept.
import { setTimeout as sleep } from 'node:timers/promises';
import type { AccountUser } from './account-state.ts';
import { sameShape } from './account-state.ts';
import { type ApplyResult, type BackendChanges, plannedUsers } from './apply.ts';
import type { BackendAccounts } from './backend-accounts.ts';
import type { AccountBaseStore } from './base-store.ts';
import { newMarker } from './charm-db.ts';
import { AccountSyncBusyError, AccountSyncLockLostError, ApplyRefusedError } from './errors.ts';
import { type BaseEntry, mergeAccountStates, referenceState } from './merge.ts';

export interface SyncReport {
  /** Users the round merged that exist afterwards. */
  users: number;
  changed: ({ backend: string } & BackendChanges)[];
  /** Backends not read or not written this round (or only partly: users that changed meanwhile). */
  skipped: { backend: string; reason: string }[];
  /** Backends whose marker did not match: they only added, and received everything. */
  untrusted: string[];
  conflicts: string[];
}

export interface SyncOptions {
  /** Every backend, in configured order (the account primary first: it wins ties). */
  backends: readonly BackendAccounts[];
  store: AccountBaseStore;
  /** Only these users (plus users sharing a public key with them, and lagging users). */
  charmIds?: readonly string[];
  now?: () => Date;
  /** How long to wait for another round to finish (default 60 s). */
  lockWaitMs?: number;
  /** Lock lease, renewed before each backend is written (default 60 s). */
  lockTtlMs?: number;
}

interface ReadBackend {
  backend: BackendAccounts;
  marker: string | null;
  trusted: boolean;
  users: Map<string, AccountUser>;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

const reachedTarget = (state: AccountUser | undefined, target: AccountUser | null) =>
  target === null ? state === undefined : sameShape(state, target);

/** One round over every backend; with `charmIds`, only those users are merged and applied. */
export async function syncAccounts(options: SyncOptions): Promise<SyncReport> {
  const { store } = options;
  const now = options.now ?? (() => new Date());
  const lockTtlMs = options.lockTtlMs ?? 60_000;
  const token = await acquireLock(store, lockTtlMs, options.lockWaitMs ?? 60_000);
  try {
    const report: SyncReport = { users: 0, changed: [], skipped: [], untrusted: [], conflicts: [] };
    const markers = await store.readMarkers();
    const read: ReadBackend[] = [];
    // Read in parallel (each is one network call to an agent), kept in configured order.
    const snapshots = await Promise.allSettled(options.backends.map((backend) => backend.read()));
    options.backends.forEach((backend, i) => {
      const outcome = snapshots[i] as PromiseSettledResult<Awaited<ReturnType<BackendAccounts['read']>>>;
      if (outcome.status === 'rejected') {
        report.skipped.push({ backend: backend.name, reason: message(outcome.reason) });
        return;
      }
      const { marker, users } = outcome.value;
      const trusted =
        marker !== null &&
        (marker === markers.current[backend.name] || marker === markers.pending[backend.name]);
      if (!trusted) report.untrusted.push(backend.name);
      read.push({ backend, marker, trusted, users });
    });

    const full = options.charmIds === undefined;
    const { scope, entries } = full
      ? await fullScope(store, read)
      : await limitedScope(store, read, options.charmIds ?? []);
    const merge = mergeAccountStates({
      charmIds: scope,
      base: entries,
      backends: read.map((r) => ({ name: r.backend.name, trusted: r.trusted, users: r.users })),
    });
    report.conflicts.push(...merge.conflicts);
    const targets = merge.users;
    for (const user of targets.values()) if (user) report.users++;

    // Before touching any DB: record the markers about to be rotated into trusted backends (so a crash after
    // a DB commit leaves that backend trusted), and promote markers a crashed round left pending. An untrusted
    // backend's new marker is only recorded once it was written (adoption): a crash in between just means one
    // more round as untrusted.
    const rotated: Record<string, string> = {};
    const promoted: Record<string, string> = {};
    const adopting: Record<string, string> = {};
    // A trusted backend's marker rotates only when its accounts changed (by the server, or by this round):
    // a restored copy then never carries the current marker unless it is the current state. Rounds that
    // change nothing take no write lock on any DB (the server's own writes fail on a busy DB, not wait).
    const changedOn = (r: ReadBackend) =>
      plannedUsers({ targets, snapshot: r.users }).length > 0 ||
      [...targets.keys()].some(
        (id) => !sameShape(r.users.get(id), referenceState(entries.get(id), r.backend.name)),
      );
    for (const r of read) {
      if (r.trusted && changedOn(r)) rotated[r.backend.name] = newMarker();
      else if (!r.trusted && full) adopting[r.backend.name] = newMarker();
      if (r.trusted && r.marker !== null && r.marker !== markers.current[r.backend.name]) {
        promoted[r.backend.name] = r.marker;
      }
    }
    await store.write(token, { pendingMarkers: rotated, markers: promoted });

    const outcomes = new Map<string, ApplyResult>();
    const unknownOutcome = new Set<string>();
    for (const r of read) {
      if (!(await store.extendLock(token, lockTtlMs))) throw new AccountSyncLockLostError();
      const name = r.backend.name;
      try {
        const result = await r.backend.apply({
          backend: name,
          targets,
          // The apply only looks at the in-scope users' rows: send no more than those.
          snapshot: new Map(
            [...targets.keys()].flatMap((id) => {
              const user = r.users.get(id);
              return user ? [[id, user] as const] : [];
            }),
          ),
          expectedMarker: r.marker,
          newMarker: rotated[name] ?? adopting[name],
          markerOnlyIfComplete: !r.trusted,
          now: now(),
        });
        outcomes.set(name, result);
        report.changed.push({ backend: name, ...result.changes });
        report.conflicts.push(...result.conflicts);
        if (result.deferred.length > 0) {
          report.skipped.push({
            backend: name,
            reason: `${result.deferred.length} user(s) changed while the round ran (${result.deferred.join(', ')}); next round`,
          });
        }
        if (!r.trusted && full && !result.markerWritten) {
          report.skipped.push({
            backend: name,
            reason: 'not fully caught up: stays untrusted until a later round',
          });
        }
      } catch (err) {
        if (!isRefusal(err)) unknownOutcome.add(name);
        report.skipped.push({ backend: name, reason: `apply failed: ${message(err)}` });
      }
    }

    // The new base: merged states, plus a ref for every backend left behind on a user.
    const readByName = new Map(read.map((r) => [r.backend.name, r]));
    const configured = new Set(options.backends.map((b) => b.name));
    const written = new Map<string, BaseEntry>();
    for (const [charmId, user] of targets) {
      const old = entries.get(charmId);
      const refs: Record<string, AccountUser | null> = {};
      for (const backend of options.backends) {
        const name = backend.name;
        const r = readByName.get(name);
        const outcome = outcomes.get(name);
        if (r && (r.trusted || outcome?.markerWritten)) {
          if (outcome?.reached.has(charmId)) continue;
          if (outcome?.partial.has(charmId)) {
            refs[name] = outcome.partial.get(charmId) ?? null;
            continue;
          }
          const snapshot = r.users.get(charmId);
          if (!reachedTarget(snapshot, user)) refs[name] = snapshot ?? null;
          continue;
        }
        // Unreadable, or a DB that is not the recorded one (wiped, a volume not mounted…): the recorded DB,
        // if it comes back, still holds its old reference. A backend never recorded has none.
        if (!Object.hasOwn(markers.current, name)) continue;
        const ref = referenceState(old, name);
        if (!reachedTarget(ref, user)) refs[name] = ref ?? null;
      }
      for (const [name, ref] of Object.entries(old?.refs ?? {})) if (!configured.has(name)) refs[name] = ref;
      const entry: BaseEntry = { user };
      const removedKeys = merge.removedKeys.get(charmId) ?? [];
      if (user && removedKeys.length > 0) entry.removedKeys = removedKeys;
      if (Object.keys(refs).length > 0) entry.refs = refs;
      if (JSON.stringify(entry) !== JSON.stringify(old)) written.set(charmId, entry);
    }
    const recorded: Record<string, string> = {};
    for (const [name, outcome] of outcomes) {
      const marker = rotated[name] ?? adopting[name];
      if (outcome.markerWritten && marker) recorded[name] = marker;
    }
    await store.write(token, {
      entries: written,
      markers: recorded,
      // An apply whose answer was lost may have committed the rotated marker: it stays pending, so trusted.
      clearPendingMarkers: Object.keys(rotated).filter((name) => !unknownOutcome.has(name)),
    });
    return report;
  } finally {
    await store.releaseLock(token);
  }
}

async function acquireLock(store: AccountBaseStore, ttlMs: number, waitMs: number): Promise<string> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const token = await store.acquireLock(ttlMs);
    if (token) return token;
    if (Date.now() >= deadline) throw new AccountSyncBusyError();
    await sleep(100);
  }
}

async function fullScope(store: AccountBaseStore, read: readonly ReadBackend[]) {
  const entries = await store.readEntries();
  const scope = new Set(entries.keys());
  for (const r of read) for (const charmId of r.users.keys()) scope.add(charmId);
  return { scope, entries };
}

/**
 * The requested users, the lagging ones, and (transitively) every user sharing a public key with them on
 * some backend or in the base: a merge moves keys between users, so both sides must be applied together.
 */
async function limitedScope(
  store: AccountBaseStore,
  read: readonly ReadBackend[],
  charmIds: readonly string[],
) {
  const owners = new Map<string, Set<string>>();
  for (const r of read) {
    for (const [charmId, user] of r.users) {
      for (const key of user.keys)
        owners.set(key.publicKey, (owners.get(key.publicKey) ?? new Set()).add(charmId));
    }
  }
  const scope = new Set([...charmIds, ...(await store.laggingUsers())]);
  const entries = await store.readEntries([...scope]);
  let frontier = [...scope];
  while (frontier.length > 0) {
    const next: string[] = [];
    for (const charmId of frontier) {
      const entry = entries.get(charmId);
      const states = [
        entry?.user,
        ...Object.values(entry?.refs ?? {}),
        ...read.map((r) => r.users.get(charmId)),
      ];
      for (const state of states) {
        for (const key of state?.keys ?? []) {
          for (const other of owners.get(key.publicKey) ?? []) {
            if (scope.has(other)) continue;
            scope.add(other);
            next.push(other);
          }
        }
      }
    }
    for (const [charmId, entry] of await store.readEntries(next)) entries.set(charmId, entry);
    frontier = next;
  }
  return { scope, entries };
}

/** Which backends answered that they know this user (an unreachable one does not provably know it). */
export async function backendsKnowingUser(
  backends: readonly BackendAccounts[],
  charmId: string,
): Promise<{ knowing: string[]; reachable: string[] }> {
  const answers = await Promise.allSettled(backends.map((b) => b.knowsUser(charmId)));
  const knowing: string[] = [];
  const reachable: string[] = [];
  answers.forEach((answer, i) => {
    const name = (backends[i] as BackendAccounts).name;
    if (answer.status === 'rejected') return;
    reachable.push(name);
    if (answer.value) knowing.push(name);
  });
  return { knowing, reachable };
}

/** The apply wrote nothing (ApplyRefusedError), as opposed to an answer that never came. */
function isRefusal(err: unknown): boolean {
  return err instanceof ApplyRefusedError;
}
