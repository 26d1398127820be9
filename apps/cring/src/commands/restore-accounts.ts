import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ACCOUNT_BACKUP_OWNER, accountBackupPath, accountsDbPath, openBackendDb } from '@cring/accounts';
import { createBackupStore } from '@cring/backup-store';
import { type CringConfig, dataDirOf, UsageError } from '../config.ts';

/**
 * `cring restore-accounts --backend <name> [--from <name>] [--force]`: writes the latest account DB backup
 * from S3 into a backend's data dir, with its charm server stopped. Account sync then treats it as untrusted
 * (its replica marker is stale) and only adds to it, so a restore never removes newer accounts elsewhere.
 */
export async function restoreAccounts(
  config: CringConfig,
  options: { backend?: string; from?: string; force: boolean },
): Promise<string> {
  if (!options.backend)
    throw new UsageError('restore-accounts needs --backend <name> (the data dir to restore into)');
  if (!config.s3)
    throw new UsageError('restore-accounts needs S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY');
  const target = dataDirOf(config, options.backend);
  const dbPath = accountsDbPath(target);
  if (existsSync(dbPath) && !options.force) {
    const db = openBackendDb(target);
    const users = (() => {
      try {
        return (db.prepare('SELECT count(*) AS n FROM charm_user').get() as { n: number }).n;
      } finally {
        db.close();
      }
    })();
    if (users > 0) throw new UsageError(`${dbPath} already holds ${users} users: pass --force to replace it`);
  }
  const source = options.from ?? options.backend;
  const store = createBackupStore(config.s3);
  try {
    const object = await store.get(ACCOUNT_BACKUP_OWNER, accountBackupPath(source));
    if (!object)
      throw new UsageError(
        `no account backup of ${source} in s3://${config.s3.bucket}; try --from <another backend>`,
      );
    mkdirSync(dirname(dbPath), { recursive: true, mode: 0o700 });
    const temp = `${dbPath}.restore`;
    const hash = createHash('sha256');
    object.body.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(object.body, createWriteStream(temp, { mode: 0o644 }));
    const sha256 = hash.digest('hex');
    if (object.sha256 && object.sha256 !== sha256) {
      throw new Error(`the backup's bytes do not match its recorded sha256 (${object.sha256}); not restored`);
    }
    renameSync(temp, dbPath);
    return `restored ${dbPath} from the backup of ${source} (${object.size} bytes, sha256 ${sha256.slice(0, 12)}…).\nstart the charm server; account sync fills in anything newer from the other backends.`;
  } finally {
    store.close();
  }
}
