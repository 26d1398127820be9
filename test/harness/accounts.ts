// Until the product syncs accounts between backends, tests make a user exist on every backend by copying the
// account rows (user, public keys, encrypt keys, seqs) from the backend that created it. Each backend keeps its
// own integer ids, so foreign keys are remapped through charm_id and the public key text.
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const dbPath = (dataDir: string) => join(dataDir, 'db', 'charm_sqlite.db');

function open(dataDir: string): DatabaseSync {
  const db = new DatabaseSync(dbPath(dataDir));
  db.exec('PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON;');
  return db;
}

interface UserRow {
  id: number;
  charm_id: string;
  name: string | null;
  email: string | null;
  bio: string | null;
  created_at: string;
}

export function copyAccount(fromDataDir: string, toDataDirs: readonly string[], charmId: string): void {
  const source = open(fromDataDir);
  try {
    const user = source.prepare('SELECT * FROM charm_user WHERE charm_id = ?').get(charmId) as
      | UserRow
      | undefined;
    if (!user) throw new Error(`user ${charmId} does not exist in ${dbPath(fromDataDir)}`);
    const keys = source
      .prepare('SELECT id, public_key, created_at FROM public_key WHERE user_id = ?')
      .all(user.id) as {
      id: number;
      public_key: string;
      created_at: string;
    }[];
    const encryptKeys = source
      .prepare(
        'SELECT pk.public_key, ek.global_id, ek.encrypted_key, ek.created_at FROM encrypt_key ek JOIN public_key pk ON pk.id = ek.public_key_id WHERE pk.user_id = ?',
      )
      .all(user.id) as { public_key: string; global_id: string; encrypted_key: string; created_at: string }[];
    const seqs = source.prepare('SELECT name, seq FROM named_seq WHERE user_id = ?').all(user.id) as {
      name: string;
      seq: number;
    }[];

    for (const dataDir of toDataDirs) {
      const target = open(dataDir);
      try {
        target.exec('BEGIN IMMEDIATE');
        target
          .prepare(
            'INSERT OR IGNORE INTO charm_user (charm_id, name, email, bio, created_at) VALUES (?, ?, ?, ?, ?)',
          )
          .run(user.charm_id, user.name, user.email, user.bio, user.created_at);
        const { id: userId } = target
          .prepare('SELECT id FROM charm_user WHERE charm_id = ?')
          .get(charmId) as {
          id: number;
        };
        for (const key of keys) {
          target
            .prepare('INSERT OR IGNORE INTO public_key (user_id, public_key, created_at) VALUES (?, ?, ?)')
            .run(userId, key.public_key, key.created_at);
        }
        for (const ek of encryptKeys) {
          const pk = target
            .prepare('SELECT id FROM public_key WHERE user_id = ? AND public_key = ?')
            .get(userId, ek.public_key) as { id: number };
          const exists = target
            .prepare('SELECT 1 FROM encrypt_key WHERE public_key_id = ? AND global_id = ?')
            .get(pk.id, ek.global_id);
          if (!exists) {
            target
              .prepare(
                'INSERT INTO encrypt_key (public_key_id, global_id, encrypted_key, created_at) VALUES (?, ?, ?, ?)',
              )
              .run(pk.id, ek.global_id, ek.encrypted_key, ek.created_at);
          }
        }
        for (const seq of seqs) {
          target
            .prepare(
              'INSERT INTO named_seq (user_id, name, seq) VALUES (?, ?, ?) ON CONFLICT (user_id, name) DO UPDATE SET seq = max(seq, excluded.seq)',
            )
            .run(userId, seq.name, seq.seq);
        }
        target.exec('COMMIT');
      } catch (err) {
        target.exec('ROLLBACK');
        throw err;
      } finally {
        target.close();
      }
    }
  } finally {
    source.close();
  }
}

/** The account rows that decide a user's identity on one backend, for comparing backends. */
export function accountRows(dataDir: string, charmId: string) {
  const db = open(dataDir);
  try {
    const user = db.prepare('SELECT id, charm_id FROM charm_user WHERE charm_id = ?').get(charmId) as
      | { id: number; charm_id: string }
      | undefined;
    if (!user) return undefined;
    const publicKeys = (
      db.prepare('SELECT public_key FROM public_key WHERE user_id = ? ORDER BY public_key').all(user.id) as {
        public_key: string;
      }[]
    ).map((row) => row.public_key);
    const encryptKeys = db
      .prepare(
        'SELECT pk.public_key, ek.global_id, ek.encrypted_key, ek.created_at FROM encrypt_key ek JOIN public_key pk ON pk.id = ek.public_key_id WHERE pk.user_id = ? ORDER BY ek.created_at, ek.global_id, pk.public_key',
      )
      .all(user.id);
    return { charmId: user.charm_id, publicKeys, encryptKeys };
  } finally {
    db.close();
  }
}
