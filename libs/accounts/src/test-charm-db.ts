// For this package's unit tests: charm DBs without a server. The schema is charm v0.12.6's
// (server/db/sqlite/sql.go); the real servers run in sync.test.ts.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { AccountUser } from './account-state.ts';
import { accountsDbPath, type BackendDb } from './charm-db.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS charm_user(
  id INTEGER NOT NULL PRIMARY KEY,
  charm_id uuid UNIQUE NOT NULL,
  name varchar(50) UNIQUE,
  email varchar(254),
  bio varchar(1000),
  created_at timestamp default current_timestamp);
CREATE TABLE IF NOT EXISTS public_key(
  id INTEGER NOT NULL PRIMARY KEY,
  user_id integer NOT NULL,
  public_key varchar(2048) NOT NULL,
  created_at timestamp default current_timestamp,
  UNIQUE (user_id, public_key),
  CONSTRAINT user_id_fk FOREIGN KEY (user_id) REFERENCES charm_user (id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE IF NOT EXISTS named_seq(
  id INTEGER NOT NULL PRIMARY KEY,
  user_id integer NOT NULL,
  seq integer NOT NULL DEFAULT 0,
  name varchar(1024) NOT NULL,
  UNIQUE (user_id, name),
  CONSTRAINT user_id_fk FOREIGN KEY (user_id) REFERENCES charm_user (id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE IF NOT EXISTS encrypt_key(
  id INTEGER NOT NULL PRIMARY KEY,
  public_key_id integer NOT NULL,
  global_id uuid NOT NULL,
  created_at timestamp default current_timestamp,
  encrypted_key varchar(2048) NOT NULL,
  CONSTRAINT public_key_id_fk FOREIGN KEY (public_key_id) REFERENCES public_key (id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE IF NOT EXISTS news(
  id INTEGER NOT NULL PRIMARY KEY, subject text, body text, created_at timestamp default current_timestamp);
CREATE TABLE IF NOT EXISTS news_tag(
  id INTEGER NOT NULL PRIMARY KEY, tag varchar(250), news_id integer NOT NULL,
  CONSTRAINT news_id_fk FOREIGN KEY (news_id) REFERENCES news (id) ON DELETE CASCADE ON UPDATE CASCADE);
CREATE TABLE IF NOT EXISTS token(
  id INTEGER NOT NULL PRIMARY KEY, pin text UNIQUE NOT NULL, created_at timestamp default current_timestamp);
`;

export interface TestDbs {
  dir: string;
  backends: BackendDb[];
  /** Opens a backend's DB as the charm server does; close it after use. */
  open(name: string): DatabaseSync;
  /** Creates the DB file with charm's schema (what a server does on start). */
  create(name: string): void;
  /** Deletes the DB file (a wipe, before the server recreates it). */
  wipe(name: string): void;
  cleanup(): void;
}

export function createTestDbs(names: readonly string[]): TestDbs {
  const dir = mkdtempSync(join(tmpdir(), 'cring-accounts-'));
  const backends = names.map((name) => ({ name, dataDir: join(dir, name) }));
  const find = (name: string) => {
    const backend = backends.find((b) => b.name === name);
    if (!backend) throw new Error(`no test backend ${name}`);
    return backend;
  };
  const open = (name: string) => new DatabaseSync(accountsDbPath(find(name)), { timeout: 5000 });
  const create = (name: string) => {
    mkdirSync(join(find(name).dataDir, 'db'), { recursive: true });
    const db = open(name);
    db.exec(SCHEMA);
    db.close();
  };
  for (const name of names) create(name);
  return {
    dir,
    backends,
    open,
    create,
    wipe: (name) => rmSync(accountsDbPath(find(name)), { force: true }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** What charm does on an SSH command from an unknown key. */
export function charmCreateUser(
  db: DatabaseSync,
  charmId: string,
  publicKey: string,
  createdAt = '2024-01-01 00:00:00',
): void {
  db.prepare('INSERT INTO charm_user (charm_id, created_at) VALUES (?, ?)').run(charmId, createdAt);
  const { id } = db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number };
  db.prepare('INSERT INTO public_key (user_id, public_key, created_at) VALUES (?, ?, ?)').run(
    id,
    publicKey,
    createdAt,
  );
}

/** api-link with an unknown requester key. */
export function charmLinkKey(db: DatabaseSync, charmId: string, publicKey: string): void {
  const { id } = db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number };
  db.prepare('INSERT INTO public_key (user_id, public_key) VALUES (?, ?)').run(id, publicKey);
}

/** api-link where the requester's key belongs to another user: charm's MergeUsers. */
export function charmMergeUsers(db: DatabaseSync, intoCharmId: string, fromCharmId: string): void {
  const id = (charmId: string) =>
    (db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number }).id;
  const into = id(intoCharmId);
  const from = id(fromCharmId);
  db.exec('BEGIN');
  db.prepare('UPDATE public_key SET user_id = ? WHERE user_id = ?').run(into, from);
  db.prepare('DELETE FROM charm_user WHERE id = ?').run(from);
  db.exec('COMMIT');
}

/** api-unlink: deleting the last key deletes the user. */
export function charmUnlinkKey(db: DatabaseSync, charmId: string, publicKey: string): void {
  const { id } = db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number };
  db.prepare('DELETE FROM public_key WHERE user_id = ? AND public_key = ?').run(id, publicKey);
  const { n } = db.prepare('SELECT count(*) AS n FROM public_key WHERE user_id = ?').get(id) as { n: number };
  if (n === 0) db.prepare('DELETE FROM charm_user WHERE id = ?').run(id);
}

/** POST /v1/encrypt-key. */
export function charmAddEncryptKey(
  db: DatabaseSync,
  publicKey: string,
  globalId: string,
  createdAt: string,
  encryptedKey = `ek-${globalId}-${publicKey.slice(-4)}`,
): void {
  const { id } = db.prepare('SELECT id FROM public_key WHERE public_key = ?').get(publicKey) as {
    id: number;
  };
  db.prepare(
    'INSERT INTO encrypt_key (public_key_id, global_id, encrypted_key, created_at) VALUES (?, ?, ?, ?)',
  ).run(id, globalId, encryptedKey, createdAt);
}

/** POST /v1/seq/:name (n times). */
export function charmIncSeq(db: DatabaseSync, charmId: string, name: string, times = 1): void {
  const { id } = db.prepare('SELECT id FROM charm_user WHERE charm_id = ?').get(charmId) as { id: number };
  for (let i = 0; i < times; i++) {
    db.prepare(
      'INSERT INTO named_seq (user_id, name) VALUES (?, ?) ON CONFLICT (user_id, name) DO UPDATE SET seq = seq + 1',
    ).run(id, name);
  }
}

/** POST /v1/bio. */
export function charmSetName(db: DatabaseSync, charmId: string, name: string): void {
  db.prepare('UPDATE charm_user SET name = ? WHERE charm_id = ?').run(name, charmId);
}

/** A hand-built user for merge tests. */
export function user(charmId: string, keys: string[], extra: Partial<AccountUser> = {}): AccountUser {
  return {
    charmId,
    name: null,
    email: null,
    bio: null,
    createdAt: '2024-01-01 00:00:00',
    keys: keys.map((publicKey) => ({ publicKey, createdAt: '2024-01-01 00:00:00', encryptKeys: [] })),
    seqs: [],
    ...extra,
  };
}
