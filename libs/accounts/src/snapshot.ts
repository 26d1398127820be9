import { randomBytes } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import {
  accountsDbPath,
  type BackendDb,
  BUSY_TIMEOUT_MS,
  newMarker,
  openBackendDb,
  writeMarker,
} from './charm-db.ts';
import { BackendInitError } from './errors.ts';

/** The server key (also the JWT key) every backend of a cluster shares. */
export const SERVER_KEY_FILE = join('.ssh', 'charm_server_ed25519');

/**
 * A consistent snapshot of one backend's DB written to `toFile` (replaced if present). VACUUM INTO runs in a
 * read transaction, so it is safe while the server runs; it waits for the server's writers like any reader.
 */
export function snapshotAccountsDb(backend: BackendDb, toFile: string): void {
  const db = openBackendDb(backend);
  const temp = `${toFile}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    mkdirSync(dirname(toFile), { recursive: true });
    db.prepare('VACUUM INTO ?').run(temp);
    renameSync(temp, toFile);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  } finally {
    db.close();
  }
}

/**
 * Prepares an empty new backend data dir from an existing one (both on this machine): see prepareBackend.
 */
export function initBackendFrom(source: BackendDb, target: BackendDb): void {
  const temp = join(dirname(accountsDbPath(target)), `source-${randomBytes(4).toString('hex')}.db`);
  refuseUnlessEmpty(target);
  try {
    mkdirSync(dirname(temp), { recursive: true, mode: 0o700 });
    snapshotAccountsDb(source, temp);
    prepareBackend({ target, snapshotFile: temp, serverKeyFile: join(source.dataDir, SERVER_KEY_FILE) });
  } finally {
    rmSync(temp, { force: true });
  }
}

/** Refuses when the target already has a DB with users (a new backend's server may have created an empty one). */
function refuseUnlessEmpty(target: BackendDb): void {
  const targetDb = accountsDbPath(target);
  if (!existsSync(targetDb)) return;
  let users = 0;
  try {
    const db = new DatabaseSync(targetDb, { timeout: BUSY_TIMEOUT_MS });
    try {
      const table = db
        .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'charm_user'")
        .get();
      users = table
        ? Number((db.prepare('SELECT count(*) AS n FROM charm_user').get() as { n: number }).n)
        : 0;
    } finally {
      db.close();
    }
  } catch (err) {
    throw new BackendInitError(`${target.name}: cannot inspect the existing DB ${targetDb}`, { cause: err });
  }
  if (users > 0) {
    throw new BackendInitError(
      `${target.name}: ${targetDb} already holds ${users} user(s); refusing to overwrite it (move it away first)`,
    );
  }
}

/**
 * Prepares an empty new backend data dir: installs the cluster's server key (.ssh 0700, key files 0600) and
 * creates the DB from a snapshot of another backend's (all accounts, e.g. fetched from its agent), with a fresh
 * marker that no store has recorded (so the next full round treats it as untrusted: it adds only, then is
 * adopted). Pending link tokens are dropped. Refuses when the target already has a DB with users or a different
 * server key. The target's server must not be running (it would keep the old, replaced DB file open). The
 * snapshot file is consumed.
 */
export function prepareBackend(options: {
  target: BackendDb;
  snapshotFile: string;
  serverKeyFile: string;
}): void {
  const { target, serverKeyFile } = options;
  const targetDb = accountsDbPath(target);
  refuseUnlessEmpty(target);
  const targetKey = join(target.dataDir, SERVER_KEY_FILE);
  for (const suffix of ['', '.pub']) {
    if (!existsSync(serverKeyFile + suffix)) {
      throw new BackendInitError(`no server key at ${serverKeyFile + suffix}`);
    }
    if (
      existsSync(targetKey + suffix) &&
      !readFileSync(targetKey + suffix).equals(readFileSync(serverKeyFile + suffix))
    ) {
      throw new BackendInitError(
        `${target.name}: ${targetKey + suffix} is a different server key; refusing to replace it (tokens and host key would change)`,
      );
    }
  }
  checkCharmDb(options.snapshotFile);
  mkdirSync(join(target.dataDir, '.ssh'), { recursive: true, mode: 0o700 });
  chmodSync(join(target.dataDir, '.ssh'), 0o700);
  for (const suffix of ['', '.pub']) {
    if (resolve(serverKeyFile + suffix) !== resolve(targetKey + suffix)) {
      copyFileSync(serverKeyFile + suffix, targetKey + suffix);
    }
    chmodSync(targetKey + suffix, 0o600);
  }

  mkdirSync(dirname(targetDb), { recursive: true, mode: 0o700 });
  const temp = `${targetDb}.init-${randomBytes(4).toString('hex')}`;
  try {
    renameSync(options.snapshotFile, temp);
    const db = new DatabaseSync(temp, { timeout: BUSY_TIMEOUT_MS });
    try {
      db.exec('BEGIN IMMEDIATE');
      db.exec('DELETE FROM token');
      writeMarker(db, newMarker(), new Date());
      db.exec('COMMIT');
    } finally {
      db.close();
    }
    replaceDbFile(temp, targetDb);
  } catch (err) {
    rmSync(temp, { force: true });
    throw err;
  }
}

/**
 * Puts a restored account DB (an S3 backup) in place of a backend's DB; refuses to replace one with users unless
 * `force`. Account sync then treats it as untrusted (its marker is stale) and only adds to it. The server must be
 * stopped. The file is consumed.
 */
export function restoreAccountsDb(options: { target: BackendDb; dbFile: string; force: boolean }): void {
  if (!options.force) refuseUnlessEmpty(options.target);
  checkCharmDb(options.dbFile);
  const targetDb = accountsDbPath(options.target);
  mkdirSync(dirname(targetDb), { recursive: true, mode: 0o700 });
  replaceDbFile(options.dbFile, targetDb);
}

/** A file is only put in place of a backend's DB when it is a charm DB (a truncated upload is not). */
function checkCharmDb(file: string): void {
  try {
    const db = openBackendDb({ name: 'upload', dataDir: '' }, file);
    db.close();
  } catch (err) {
    throw new BackendInitError(`the uploaded file is not a charm account DB: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function replaceDbFile(from: string, targetDb: string): void {
  // A journal left beside an empty DB would be "hot" for the new file and rolled back into it.
  rmSync(`${targetDb}-journal`, { force: true });
  renameSync(from, targetDb);
}
