// CRING_S3_RETENTION_DAYS: versitygw (v1.8.0, posix) answers 501 NotImplemented to bucket lifecycle rules, so the
// healer prunes noncurrent versions itself, with the rule of `prunable` (history.ts).
import type { BackupStore } from './backup-store.ts';
import { historiesOf, prunable } from './history.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * Permanently deletes every noncurrent version (and noncurrent delete marker) of the bucket that stopped being
 * current more than `retentionDays` before `now`; the current entry of a key is never touched. Returns counts.
 */
export async function pruneNoncurrentVersions(
  store: BackupStore,
  options: { retentionDays: number; now?: Date; dryRun?: boolean; signal?: AbortSignal },
): Promise<{ versions: number; bytes: number; keys: number }> {
  const before = new Date((options.now ?? new Date()).getTime() - options.retentionDays * DAY_MS);
  const result = { versions: 0, bytes: 0, keys: 0 };
  let batch: { key: string; versionId: string }[] = [];
  const flush = async () => {
    if (!options.dryRun && batch.length > 0) await store.deleteVersions(batch);
    batch = [];
  };
  for await (const history of historiesOf(store.versions(undefined))) {
    options.signal?.throwIfAborted();
    const gone = prunable(history.entries, before);
    if (gone.length === 0) continue;
    result.keys++;
    for (const entry of gone) {
      result.versions++;
      result.bytes += entry.size;
      batch.push({ key: history.path, versionId: entry.versionId });
    }
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return result;
}
