import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ACCOUNT_BACKUP_OWNER,
  type AccountBaseStore,
  accountBackupPath,
  accountKeys,
  backendsKnowingUser,
  type SyncReport,
  syncAccounts,
} from '@cring/accounts';
import type { AgentClient } from '@cring/agent-protocol';
import type { BackupStore } from '@cring/backup-store';
import type { AccountSyncJob } from '@cring/jobs';
import type { Logger } from '@cring/service-runtime';
import type { Redis } from 'ioredis';

const changedAnything = (report: SyncReport) =>
  report.changed.some((c) =>
    Object.entries(c).some(([key, value]) => key !== 'backend' && Number(value) > 0),
  );

/**
 * Runs account sync rounds for the replicator: a round over every user on a schedule, and rounds limited to the
 * users the gateway asks about. After a round, users present on every reachable backend are marked synced (the
 * gateway's fast path), and the account DBs are backed up to S3 when something changed or the backup is old.
 */
export function createAccountSync(options: {
  /** Every backend's agent, in configured order. */
  backends: readonly AgentClient[];
  store: AccountBaseStore;
  redis: Redis;
  backup: BackupStore;
  backupIntervalMs: number;
  logger: Logger;
}) {
  const { backends, redis, logger } = options;

  async function backUpAccounts(reason: string): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), 'cring-accounts-'));
    try {
      for (const backend of backends) {
        const file = join(dir, `${backend.name}.sqlite`);
        let copy: { size: number; sha256: string };
        try {
          copy = await backend.downloadAccountsDb(file);
        } catch (err) {
          logger.warn(
            { backend: backend.name, err: (err as Error).message },
            'account DB not backed up: unreadable',
          );
          continue;
        }
        await options.backup.put(ACCOUNT_BACKUP_OWNER, accountBackupPath(backend.name), {
          body: createReadStream(file),
          size: copy.size,
          sha256: copy.sha256,
          mode: 0o600,
          version: Date.now(),
        });
      }
      await redis.set(accountKeys.lastBackup(), new Date().toISOString());
      logger.info({ reason, backends: backends.map((b) => b.name) }, 'account DBs backed up to S3');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  return {
    async run(job: AccountSyncJob): Promise<SyncReport> {
      const report = await syncAccounts({ backends, store: options.store, charmIds: job.charmIds });
      for (const charmId of job.charmIds ?? []) {
        const { knowing, reachable } = await backendsKnowingUser(backends, charmId);
        if (knowing.length === reachable.length) await redis.sadd(accountKeys.synced(), charmId);
      }
      if (changedAnything(report) || report.conflicts.length > 0) {
        logger.info(
          { changed: report.changed, conflicts: report.conflicts, untrusted: report.untrusted },
          'accounts converged',
        );
      }
      // Full rounds decide about backups: when the merged account state differs from the last backup's (changes
      // the gateway fanned out itself leave the round nothing to apply), or when the backup is old.
      if (!job.charmIds) {
        const digest = createHash('sha256')
          .update(
            JSON.stringify([...(await options.store.readEntries())].sort(([a], [b]) => (a < b ? -1 : 1))),
          )
          .digest('hex');
        const [last, lastDigest] = await redis.mget(accountKeys.lastBackup(), accountKeys.lastBackupDigest());
        const stale = !last || Date.now() - Date.parse(last) > options.backupIntervalMs;
        if (digest !== lastDigest || stale) {
          try {
            await backUpAccounts(stale ? 'schedule' : 'change');
            await redis.set(accountKeys.lastBackupDigest(), digest);
          } catch (err) {
            logger.warn(
              { err: (err as Error).message },
              'account backup to S3 failed; retried after the next round',
            );
          }
        }
      }
      return report;
    },
  };
}
