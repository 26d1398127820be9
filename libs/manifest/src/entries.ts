/**
 * Manifest entries. A path's entry is either the current file version or a tombstone. A tombstone at P covers P
 * and everything below it (DELETE is recursive on the server). The entry that governs a path is the newest of
 * its own entry and the tombstones at its ancestors: a job or repair for version v applies only while v governs.
 */
export interface FileEntry {
  kind: 'file';
  version: number;
  sha256: string;
  size: number;
  mode: number;
  /** Backends known to hold exactly this version. */
  holders: string[];
  atMs: number;
}

export interface Tombstone {
  kind: 'tombstone';
  version: number;
  /** Backends known to have applied the delete. */
  holders: string[];
  atMs: number;
}

export type ManifestEntry = FileEntry | Tombstone;

interface StoredEntry {
  k: 'f' | 't';
  v: number;
  h: string[];
  at: number;
  sha?: string;
  size?: number;
  mode?: number;
}

export function encodeEntry(entry: ManifestEntry): string {
  const stored: StoredEntry =
    entry.kind === 'file'
      ? {
          k: 'f',
          v: entry.version,
          h: entry.holders,
          at: entry.atMs,
          sha: entry.sha256,
          size: entry.size,
          mode: entry.mode,
        }
      : { k: 't', v: entry.version, h: entry.holders, at: entry.atMs };
  return JSON.stringify(stored);
}

export function decodeEntry(json: string): ManifestEntry {
  const stored = JSON.parse(json) as StoredEntry;
  const holders = Array.isArray(stored.h) ? stored.h : [];
  if (stored.k === 't') return { kind: 'tombstone', version: stored.v, holders, atMs: stored.at };
  return {
    kind: 'file',
    version: stored.v,
    sha256: stored.sha ?? '',
    size: stored.size ?? 0,
    mode: stored.mode ?? 0,
    holders,
    atMs: stored.at,
  };
}

/**
 * The entry that governs `path` in a snapshot of a user's entries (`entriesWithin`): its own file entry, or the
 * newest tombstone at it or above it, as `Manifest.governing` decides it in Redis. A file entry at an ancestor
 * is stale and governs nothing below it.
 */
export function governingIn(
  entries: ReadonlyMap<string, ManifestEntry>,
  path: string,
): (ManifestEntry & { path: string }) | undefined {
  let best: (ManifestEntry & { path: string }) | undefined;
  const segments = path === '/' ? [] : path.split('/').slice(1);
  for (let depth = 0; depth <= segments.length; depth++) {
    const at = depth === 0 ? '/' : `/${segments.slice(0, depth).join('/')}`;
    const entry = entries.get(at);
    if (!entry || (entry.kind === 'file' && at !== path)) continue;
    if (!best || entry.version > best.version) best = { ...entry, path: at };
  }
  return best;
}
