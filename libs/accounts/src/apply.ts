// Brings one backend DB to the merged states, in one BEGIN IMMEDIATE transaction: deletions first (users,
// then keys), then inserts (users, keys, encrypt keys), then names and seq raises. A user whose rows changed
// since the round read them is left alone this round ("deferred"): the server wrote in between, and the next
// round reads that change against what this round read.
import type { DatabaseSync } from 'node:sqlite';
import type { AccountUser } from './account-state.ts';
import { sameShape, sameUser } from './account-state.ts';
import { readAccount, readMarker, writeMarker } from './charm-db.ts';
import { foldName, shortKey } from './merge.ts';

export interface BackendChanges {
  usersAdded: number;
  usersDeleted: number;
  keysAdded: number;
  keysDeleted: number;
  encryptKeysAdded: number;
  namesSet: number;
  seqsRaised: number;
}

export interface ApplyPlan {
  backend: string;
  /** The merged state per in-scope user; null = delete. */
  targets: ReadonlyMap<string, AccountUser | null>;
  /** What the round read from this backend. */
  snapshot: ReadonlyMap<string, AccountUser>;
  /** The marker the round read; the apply is abandoned if the DB now has another (it was replaced). */
  expectedMarker: string | null;
  /** Written in the same transaction (a trusted backend's rotation, or an untrusted backend's adoption). */
  newMarker?: string;
  /** Write `newMarker` only if every planned user reached its target (adopting an untrusted backend). */
  markerOnlyIfComplete?: boolean;
  now: Date;
}

export interface ApplyResult {
  changes: BackendChanges;
  /** Users whose rows changed between the read and this transaction: not touched. */
  deferred: string[];
  /** Users the backend now holds exactly as merged (shape-wise). */
  reached: Set<string>;
  /** Users it was applied to but that it could not take fully (a name or key taken there): what it holds now. */
  partial: Map<string, AccountUser | undefined>;
  markerWritten: boolean;
  conflicts: string[];
}

export function emptyChanges(): BackendChanges {
  return {
    usersAdded: 0,
    usersDeleted: 0,
    keysAdded: 0,
    keysDeleted: 0,
    encryptKeysAdded: 0,
    namesSet: 0,
    seqsRaised: 0,
  };
}

/** The users whose rows on this backend differ from the merge. */
export function plannedUsers(plan: Pick<ApplyPlan, 'targets' | 'snapshot'>): string[] {
  const planned: string[] = [];
  for (const [charmId, target] of plan.targets) {
    const current = plan.snapshot.get(charmId);
    if (target === null ? current !== undefined : !sameShape(current, target)) planned.push(charmId);
  }
  return planned;
}

export function applyAccountStates(db: DatabaseSync, plan: ApplyPlan): ApplyResult {
  const changes = emptyChanges();
  const conflicts: string[] = [];
  const deferred = new Set<string>();
  const reached = new Set<string>();
  const partial = new Map<string, AccountUser | undefined>();
  if (!plan.newMarker && plannedUsers(plan).length === 0) {
    // Nothing to write: no write lock (charm's own transactions fail, rather than wait, while one is held).
    for (const charmId of plan.targets.keys()) reached.add(charmId);
    return { changes, deferred: [], reached, partial, markerWritten: false, conflicts };
  }
  db.exec('BEGIN IMMEDIATE');
  try {
    const marker = readMarker(db);
    if (marker !== plan.expectedMarker) {
      throw new Error(
        `${plan.backend}: the replica marker changed during the round (DB replaced?); not applied`,
      );
    }
    const work: { charmId: string; target: AccountUser | null; live: AccountUser | undefined }[] = [];
    for (const charmId of plannedUsers(plan)) {
      const live = readAccount(db, charmId);
      if (!sameUser(live, plan.snapshot.get(charmId))) deferred.add(charmId);
      else work.push({ charmId, target: plan.targets.get(charmId) ?? null, live });
    }
    const userId = (charmId: string) =>
      (db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number } | undefined)
        ?.id;

    // 1. Deletions. Users cascade to their keys, encrypt keys and seqs; keys cascade to their encrypt keys.
    for (const { charmId, target, live } of work) {
      if (!live) continue;
      if (target === null) {
        db.prepare('DELETE FROM charm_user WHERE charm_id = ?').run(charmId);
        changes.usersDeleted++;
        continue;
      }
      const wanted = new Set(target.keys.map((k) => k.publicKey));
      const id = userId(charmId);
      for (const key of live.keys) {
        if (wanted.has(key.publicKey)) continue;
        db.prepare('DELETE FROM public_key WHERE user_id = ? AND public_key = ?').run(
          id ?? -1,
          key.publicKey,
        );
        changes.keysDeleted++;
      }
    }

    // 2. Inserts, with created_at copied from the source rows.
    for (const { charmId, target, live } of work) {
      if (target === null) continue;
      if (!live) {
        db.prepare('INSERT INTO charm_user (charm_id, email, bio, created_at) VALUES (?, ?, ?, ?)').run(
          charmId,
          target.email,
          target.bio,
          target.createdAt,
        );
        changes.usersAdded++;
      }
      const id = userId(charmId);
      if (id === undefined) continue;
      for (const key of target.keys) {
        let keyId = (
          db
            .prepare('SELECT id FROM public_key WHERE user_id = ? AND public_key = ?')
            .get(id, key.publicKey) as { id: number } | undefined
        )?.id;
        if (keyId === undefined) {
          const owner = db
            .prepare(
              'SELECT u.charm_id FROM public_key pk JOIN charm_user u ON u.id = pk.user_id WHERE pk.public_key = ?',
            )
            .get(key.publicKey) as { charm_id: string } | undefined;
          if (owner) {
            conflicts.push(
              `${plan.backend}: public key ${shortKey(key.publicKey)} of ${charmId} is held by ${owner.charm_id} there; not added`,
            );
            continue;
          }
          keyId = Number(
            db
              .prepare('INSERT INTO public_key (user_id, public_key, created_at) VALUES (?, ?, ?)')
              .run(id, key.publicKey, key.createdAt).lastInsertRowid,
          );
          changes.keysAdded++;
        }
        for (const encryptKey of key.encryptKeys) {
          const exists = db
            .prepare('SELECT 1 FROM encrypt_key WHERE public_key_id = ? AND global_id = ?')
            .get(keyId, encryptKey.globalId);
          if (exists) continue;
          db.prepare(
            'INSERT INTO encrypt_key (public_key_id, global_id, encrypted_key, created_at) VALUES (?, ?, ?, ?)',
          ).run(keyId, encryptKey.globalId, encryptKey.encryptedKey, encryptKey.createdAt);
          changes.encryptKeysAdded++;
        }
      }
    }

    // 3. Names: clear every changing name first (so swaps work), then set, skipping names taken there.
    const renames = work.filter(
      (w): w is typeof w & { target: AccountUser } =>
        w.target !== null && (w.live?.name ?? null) !== w.target.name,
    );
    for (const { charmId } of renames) {
      db.prepare('UPDATE charm_user SET name = NULL WHERE charm_id = ?').run(charmId);
    }
    const nameTaken = (name: string, charmId: string) =>
      db
        .prepare('SELECT charm_id FROM charm_user WHERE lower(name) = ? AND charm_id <> ?')
        .get(foldName(name), charmId) as { charm_id: string } | undefined;
    for (const { charmId, target, live } of renames) {
      if (target.name === null) {
        changes.namesSet++;
        continue;
      }
      const holder = nameTaken(target.name, charmId);
      if (!holder) {
        db.prepare('UPDATE charm_user SET name = ? WHERE charm_id = ?').run(target.name, charmId);
        changes.namesSet++;
        continue;
      }
      const old = live?.name ?? null;
      if (old !== null && !nameTaken(old, charmId)) {
        db.prepare('UPDATE charm_user SET name = ? WHERE charm_id = ?').run(old, charmId);
      }
      conflicts.push(
        `${plan.backend}: name ${JSON.stringify(target.name)} for ${charmId} is taken there by ${holder.charm_id}; not set`,
      );
    }

    // 4. Seqs only go up.
    for (const { charmId, target, live } of work) {
      if (target === null) continue;
      const id = userId(charmId);
      if (id === undefined) continue;
      const have = new Map(live?.seqs.map((s) => [s.name, s.seq]));
      for (const { name, seq } of target.seqs) {
        const current = have.get(name);
        if (current !== undefined && current >= seq) continue;
        db.prepare(
          'INSERT INTO named_seq (user_id, name, seq) VALUES (?, ?, ?) ON CONFLICT (user_id, name) DO UPDATE SET seq = max(seq, excluded.seq)',
        ).run(id, name, seq);
        changes.seqsRaised++;
      }
    }

    const worked = new Set(work.map((w) => w.charmId));
    for (const [charmId, target] of plan.targets) {
      if (deferred.has(charmId)) continue;
      const live = worked.has(charmId) ? readAccount(db, charmId) : plan.snapshot.get(charmId);
      if (target === null ? live === undefined : sameShape(live, target)) reached.add(charmId);
      else partial.set(charmId, live);
    }
    const complete = deferred.size === 0 && reached.size === plan.targets.size;
    let markerWritten = false;
    if (plan.newMarker && (!plan.markerOnlyIfComplete || complete)) {
      writeMarker(db, plan.newMarker, plan.now);
      markerWritten = true;
    }
    db.exec('COMMIT');
    return { changes, deferred: [...deferred], reached, partial, markerWritten, conflicts };
  } catch (err) {
    if (db.isTransaction) db.exec('ROLLBACK');
    throw err;
  }
}
