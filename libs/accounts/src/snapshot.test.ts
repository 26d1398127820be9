import assert from 'node:assert/strict';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import { accountsDbPath, readAllAccounts, readMarker, writeMarker } from './charm-db.ts';
import { BackendInitError, BackendUnavailableError } from './errors.ts';
import { initBackendFrom, SERVER_KEY_FILE, snapshotAccountsDb } from './snapshot.ts';
import { charmCreateUser, createTestDbs } from './test-charm-db.ts';

const dbs = createTestDbs(['source', 'empty']);
after(() => dbs.cleanup());
const [source, empty] = dbs.backends as [(typeof dbs.backends)[0], (typeof dbs.backends)[0]];

const withDb = <T>(path: string, read: (db: DatabaseSync) => T): T => {
  const db = new DatabaseSync(path);
  try {
    return read(db);
  } finally {
    db.close();
  }
};

mkdirSync(join(source.dataDir, '.ssh'), { recursive: true });
writeFileSync(join(source.dataDir, SERVER_KEY_FILE), 'PRIVATE KEY');
writeFileSync(join(source.dataDir, `${SERVER_KEY_FILE}.pub`), 'ssh-ed25519 AAAAserver');
{
  const db = dbs.open('source');
  charmCreateUser(db, '11111111-1111-4111-8111-111111111111', 'ssh-ed25519 AAAAkey1');
  db.prepare('INSERT INTO token (pin) VALUES (?)').run('ABC369');
  writeMarker(db, 'source-marker', new Date());
  db.close();
}

describe('snapshotAccountsDb', () => {
  it('writes a consistent copy, replacing an older one', () => {
    const to = join(dbs.dir, 'snap', 'copy.db');
    snapshotAccountsDb(source, to);
    snapshotAccountsDb(source, to);
    assert.equal(withDb(to, (db) => readAllAccounts(db)).size, 1);
  });

  it('refuses a backend without a DB instead of snapshotting nothing', () => {
    assert.throws(
      () => snapshotAccountsDb({ name: 'gone', dataDir: join(dbs.dir, 'gone') }, join(dbs.dir, 'x.db')),
      BackendUnavailableError,
    );
  });
});

describe('initBackendFrom', () => {
  it('copies the server key and every account, drops link tokens and sets a fresh marker', () => {
    const target = { name: 'new', dataDir: join(dbs.dir, 'new') };
    initBackendFrom(source, target);
    assert.equal(statSync(join(target.dataDir, '.ssh')).mode & 0o777, 0o700);
    assert.equal(statSync(join(target.dataDir, SERVER_KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(join(target.dataDir, `${SERVER_KEY_FILE}.pub`)).mode & 0o777, 0o600);
    withDb(accountsDbPath(target), (db) => {
      assert.equal(readAllAccounts(db).size, 1);
      assert.equal(db.prepare('SELECT count(*) AS n FROM token').get()?.n, 0);
      const marker = readMarker(db);
      assert.ok(marker);
      assert.notEqual(marker, 'source-marker');
    });
    assert.throws(() => initBackendFrom(source, target), BackendInitError, 'target has users now');
  });

  it('accepts a target whose server created an empty DB, but not one with another server key', () => {
    initBackendFrom(source, empty);
    assert.equal(withDb(accountsDbPath(empty), (db) => readAllAccounts(db)).size, 1);

    const other = { name: 'other', dataDir: join(dbs.dir, 'other') };
    mkdirSync(join(other.dataDir, '.ssh'), { recursive: true });
    writeFileSync(join(other.dataDir, SERVER_KEY_FILE), 'ANOTHER KEY');
    assert.throws(() => initBackendFrom(source, other), /different server key/);
  });
});
