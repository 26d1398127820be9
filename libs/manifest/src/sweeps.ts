import { isWithin } from '@cring/charm';
import type { ManifestEntry } from './entries.ts';

/** Unfinished sweeps of one user: tombstone path → tombstone version. */
export type Sweeps = ReadonlyMap<string, number>;

/**
 * Whether an entry is one a delete already covered but its chunked sweep has not removed yet: it lies strictly
 * below the sweep's path and is older than the sweep's tombstone. Such an entry is treated as removed, exactly as
 * the one-step delete removed it, even once the tombstone itself was replaced (a file written at its path).
 */
export function hiddenBySweep(path: string, entry: ManifestEntry, sweeps: Sweeps): boolean {
  for (const [sweptPath, version] of sweeps) {
    if (path !== sweptPath && isWithin(path, sweptPath) && entry.version < version) return true;
  }
  return false;
}
