// Reading a key's history (its object versions and delete markers, newest first): what it was at a time, and
// which versions the retention lets go. Both decisions are here, on plain lists, so they are tested without S3.
import type { BackupVersion } from './backup-store.ts';

/** One key's entries, newest first, as `BackupStore.versions` yields them (consecutive per key). */
export interface KeyHistory {
  path: string;
  entries: BackupVersion[];
}

/** Groups the stream of `versions` into one history per key. */
export async function* historiesOf(versions: AsyncIterable<BackupVersion>): AsyncGenerator<KeyHistory> {
  let current: KeyHistory | undefined;
  for await (const version of versions) {
    if (current?.path !== version.path) {
      if (current) yield current;
      current = { path: version.path, entries: [] };
    }
    current.entries.push(version);
  }
  if (current) yield current;
}

/**
 * The object version that was current at `at`: the newest entry stored at or before it, unless that is a delete
 * marker (or there is none): then the key was absent at `at` and this returns undefined.
 */
export function versionAt(entries: readonly BackupVersion[], at: Date): BackupVersion | undefined {
  const then = entries.find((entry) => entry.storedAt.getTime() <= at.getTime());
  return then && !then.deleteMarker ? then : undefined;
}

/**
 * The entries the retention removes: a noncurrent entry (object version or delete marker) whose successor (the
 * entry that made it noncurrent) was stored before `noncurrentBefore`. The newest entry of a key, the current
 * one, is never among them, so pruning never changes what a key reads as now.
 */
export function prunable(entries: readonly BackupVersion[], noncurrentBefore: Date): BackupVersion[] {
  return entries.slice(1).filter((_, i) => {
    const successor = entries[i] as BackupVersion;
    return successor.storedAt.getTime() < noncurrentBefore.getTime();
  });
}
