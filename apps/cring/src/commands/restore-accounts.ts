import { createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ACCOUNT_BACKUP_OWNER, accountBackupPath } from '@cring/accounts';
import { AgentRefusedError } from '@cring/agent-protocol';
import { createBackupStore } from '@cring/backup-store';
import { agentOf, type CringConfig, UsageError } from '../config.ts';

/**
 * `cring restore-accounts --backend <name> [--from <name>] [--force]`: puts the latest account DB backup from S3
 * in place of a backend's DB, through its agent, with its charm server stopped. Account sync then treats it as
 * untrusted (its replica marker is stale) and only adds to it, so a restore never removes newer accounts elsewhere.
 */
export async function restoreAccounts(
  config: CringConfig,
  options: { backend?: string; from?: string; force: boolean },
): Promise<string> {
  if (!options.backend)
    throw new UsageError('restore-accounts needs --backend <name> (the DB to restore into)');
  if (!config.s3)
    throw new UsageError('restore-accounts needs S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY');
  const agent = agentOf(config, options.backend);
  const source = options.from ?? options.backend;
  const store = createBackupStore(config.s3);
  const dir = mkdtempSync(join(tmpdir(), 'cring-restore-'));
  try {
    const object = await store.get(ACCOUNT_BACKUP_OWNER, accountBackupPath(source));
    if (!object)
      throw new UsageError(
        `no account backup of ${source} in s3://${config.s3.bucket}; try --from <another backend>`,
      );
    const file = join(dir, 'accounts.db');
    const hash = createHash('sha256');
    object.body.on('data', (chunk: Buffer) => hash.update(chunk));
    await pipeline(object.body, createWriteStream(file, { mode: 0o600 }));
    const sha256 = hash.digest('hex');
    if (object.sha256 && object.sha256 !== sha256) {
      throw new Error(`the backup's bytes do not match its recorded sha256 (${object.sha256}); not restored`);
    }
    try {
      await agent.uploadAccountsDb('restore', file, { force: options.force });
    } catch (err) {
      if (err instanceof AgentRefusedError && err.code === 'BACKEND_INIT_REFUSED')
        throw new UsageError(`${err.message}: pass --force to replace it`);
      throw err;
    }
    return `restored ${options.backend}'s account DB from the backup of ${source} (${object.size} bytes, sha256 ${sha256.slice(0, 12)}…).\nstart the charm server; account sync fills in anything newer from the other backends.`;
  } finally {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
