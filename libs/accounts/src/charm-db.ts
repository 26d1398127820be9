// Reading charm's SQLite (server/db/sqlite in charm v0.12.6) while the server runs. The server opens it with
// busy_timeout 5000 and foreign_keys on, in the default rollback-journal mode, and re-reads it per request.
import { randomUUID } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type {
  AccountEncryptKey,
  AccountPublicKey,
  AccountSeq,
  AccountUser,
  SqlTime,
} from './account-state.ts';
import { normalizeUser } from './account-state.ts';
import { BackendUnavailableError } from './errors.ts';

export interface BackendDb {
  name: string;
  dataDir: string;
}

export const BUSY_TIMEOUT_MS = 5000;

export function accountsDbPath(backend: BackendDb): string {
  return join(backend.dataDir, 'db', 'charm_sqlite.db');
}

/** The replica marker's table; charm ignores tables it does not know. */
export const MARKER_TABLE = 'cring_replica';

/**
 * Opens an existing charm DB. Never creates one: a missing data dir or DB file means "unreachable", not
 * "empty", and a DB without charm's tables (server never started on it) is refused too.
 */
export function openBackendDb(backend: BackendDb, path = accountsDbPath(backend)): DatabaseSync {
  let isFile = false;
  try {
    isFile = statSync(path).isFile();
  } catch {
    isFile = false;
  }
  if (!isFile) throw new BackendUnavailableError(backend.name, `no DB file at ${path}`);
  let db: DatabaseSync;
  try {
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS, enableForeignKeyConstraints: true });
  } catch (err) {
    throw new BackendUnavailableError(backend.name, `cannot open ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  try {
    const tables = new Set(
      (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map(
        (row) => row.name,
      ),
    );
    const missing = ['charm_user', 'public_key', 'encrypt_key', 'named_seq'].filter((t) => !tables.has(t));
    if (missing.length > 0) {
      throw new BackendUnavailableError(backend.name, `${path} lacks charm tables (${missing.join(', ')})`);
    }
  } catch (err) {
    db.close();
    if (err instanceof BackendUnavailableError) throw err;
    throw new BackendUnavailableError(backend.name, `cannot read ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  return db;
}

interface UserRow {
  id: number;
  charm_id: string;
  name: string | null;
  email: string | null;
  bio: string | null;
  created_at: SqlTime;
}
interface KeyRow {
  id: number;
  user_id: number;
  public_key: string;
  created_at: SqlTime;
}
interface EncryptKeyRow {
  public_key_id: number;
  global_id: string;
  encrypted_key: string;
  created_at: SqlTime;
}
interface SeqRow {
  user_id: number;
  name: string;
  seq: number;
}

const USER_COLUMNS = 'u.id, u.charm_id, u.name, u.email, u.bio, u.created_at';

function assemble(users: UserRow[], keys: KeyRow[], encryptKeys: EncryptKeyRow[], seqs: SeqRow[]) {
  const keysById = new Map<number, AccountPublicKey>();
  const keysByUser = new Map<number, AccountPublicKey[]>();
  for (const row of keys) {
    const key: AccountPublicKey = { publicKey: row.public_key, createdAt: row.created_at, encryptKeys: [] };
    keysById.set(row.id, key);
    const list = keysByUser.get(row.user_id) ?? [];
    list.push(key);
    keysByUser.set(row.user_id, list);
  }
  // Rows arrive in charm's order (created_at, then id); a duplicate (public key, global id) keeps the first.
  for (const row of encryptKeys) {
    const key = keysById.get(row.public_key_id);
    if (!key || key.encryptKeys.some((e) => e.globalId === row.global_id)) continue;
    const encryptKey: AccountEncryptKey = {
      globalId: row.global_id,
      encryptedKey: row.encrypted_key,
      createdAt: row.created_at,
    };
    key.encryptKeys.push(encryptKey);
  }
  const seqsByUser = new Map<number, AccountSeq[]>();
  for (const row of seqs) {
    const list = seqsByUser.get(row.user_id) ?? [];
    list.push({ name: row.name, seq: Number(row.seq) });
    seqsByUser.set(row.user_id, list);
  }
  const result = new Map<string, AccountUser>();
  for (const row of users) {
    result.set(
      row.charm_id,
      normalizeUser({
        charmId: row.charm_id,
        name: row.name,
        email: row.email,
        bio: row.bio,
        createdAt: row.created_at,
        keys: keysByUser.get(row.id) ?? [],
        seqs: seqsByUser.get(row.id) ?? [],
      }),
    );
  }
  return result;
}

/** Every user's account rows, read in one read transaction (a consistent snapshot). */
export function readAllAccounts(db: DatabaseSync): Map<string, AccountUser> {
  return inReadTransaction(db, () =>
    assemble(
      db.prepare(`SELECT ${USER_COLUMNS} FROM charm_user u`).all() as unknown as UserRow[],
      db.prepare('SELECT id, user_id, public_key, created_at FROM public_key').all() as unknown as KeyRow[],
      db
        .prepare(
          'SELECT public_key_id, global_id, encrypted_key, created_at FROM encrypt_key ORDER BY created_at, id',
        )
        .all() as unknown as EncryptKeyRow[],
      db.prepare('SELECT user_id, name, seq FROM named_seq').all() as unknown as SeqRow[],
    ),
  );
}

/** One user's rows; call inside a transaction for a consistent view. */
export function readAccount(db: DatabaseSync, charmId: string): AccountUser | undefined {
  const user = db.prepare(`SELECT ${USER_COLUMNS} FROM charm_user u WHERE u.charm_id = ?`).get(charmId) as
    | UserRow
    | undefined;
  if (!user) return undefined;
  const keys = db
    .prepare('SELECT id, user_id, public_key, created_at FROM public_key WHERE user_id = ?')
    .all(user.id) as unknown as KeyRow[];
  const encryptKeys = db
    .prepare(
      `SELECT ek.public_key_id, ek.global_id, ek.encrypted_key, ek.created_at FROM encrypt_key ek
       JOIN public_key pk ON pk.id = ek.public_key_id WHERE pk.user_id = ? ORDER BY ek.created_at, ek.id`,
    )
    .all(user.id) as unknown as EncryptKeyRow[];
  const seqs = db
    .prepare('SELECT user_id, name, seq FROM named_seq WHERE user_id = ?')
    .all(user.id) as unknown as SeqRow[];
  return assemble([user], keys, encryptKeys, seqs).get(charmId);
}

/** The replica marker, or null when the DB has none (new, wiped or replaced DB). */
export function readMarker(db: DatabaseSync): string | null {
  const table = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(MARKER_TABLE);
  if (!table) return null;
  const rows = db.prepare(`SELECT id FROM ${MARKER_TABLE}`).all() as { id: string }[];
  return rows.length === 1 ? (rows[0]?.id ?? null) : null;
}

/** Replaces the marker; call inside the write transaction that also applies the round. */
export function writeMarker(db: DatabaseSync, marker: string, now: Date): void {
  db.exec(`CREATE TABLE IF NOT EXISTS ${MARKER_TABLE} (id TEXT PRIMARY KEY, created_at TEXT)`);
  db.exec(`DELETE FROM ${MARKER_TABLE}`);
  db.prepare(`INSERT INTO ${MARKER_TABLE} (id, created_at) VALUES (?, ?)`).run(marker, now.toISOString());
}

export function newMarker(): string {
  return randomUUID();
}

export function readMarkerAndAccounts(db: DatabaseSync): {
  marker: string | null;
  users: Map<string, AccountUser>;
} {
  return inReadTransaction(db, () => ({ marker: readMarker(db), users: readAllAccounts(db) }));
}

/** Runs `read` inside one deferred transaction (a shared lock: one snapshot), nesting-safe. */
export function inReadTransaction<T>(db: DatabaseSync, read: () => T): T {
  if (db.isTransaction) return read();
  db.exec('BEGIN');
  try {
    return read();
  } finally {
    db.exec('COMMIT');
  }
}
