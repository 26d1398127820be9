// What `cring restore` does with each path: one decision per path, from the path's backup history and what the
// manifest says it is now. The table is in apps/cring/README.md ("cring restore"); this code follows it row by row.
import { isWithin } from '@cring/charm';
import { governingIn, type ManifestEntry } from '@cring/manifest';

/** The object version a path had at the restore time, with the metadata the backup stored with it. */
export interface VersionThen {
  versionId: string;
  size: number;
  /** Undefined when the object carries no sha256 metadata (not written by Charmed Ring). */
  sha256?: string;
  mode?: number;
}

export type RestoreAction =
  /** Existed then, its bytes differ now (overwritten since): written back as a new version. */
  | { kind: 'restore'; because: 'changed'; path: string; version: VersionThen; nowSha256: string }
  /** Existed then, absent now (deleted since): written back as a new version. */
  | { kind: 'restore'; because: 'deleted'; path: string; version: VersionThen }
  /** The same bytes then and now. */
  | { kind: 'unchanged'; path: string }
  /** Absent then (not yet written, or deleted), present now: left as it is, and reported. */
  | { kind: 'extra'; path: string; nowSha256: string }
  /** Existed then, but the backup cannot be checked (no sha256 or mode): not restored, reported. */
  | { kind: 'unverifiable'; path: string; reason: string };

/** The file a path is now, from a snapshot of the manifest: undefined when absent (no entry, or a tombstone). */
export function fileNow(entries: ReadonlyMap<string, ManifestEntry>, path: string) {
  const governing = governingIn(entries, path);
  return governing?.kind === 'file' ? governing : undefined;
}

/**
 * One action per path at or below `scope`: `then` maps the paths with history to their version at the restore
 * time (undefined: absent then); `now` is the manifest's snapshot of the user's entries. Paths absent both then
 * and now are left out.
 */
export function planRestore(
  then: ReadonlyMap<string, VersionThen | undefined>,
  now: ReadonlyMap<string, ManifestEntry>,
  scope = '/',
): RestoreAction[] {
  const filesNow = [...now].filter(([p, e]) => e.kind === 'file' && isWithin(p, scope)).map(([p]) => p);
  const paths = new Set([...[...then.keys()].filter((p) => isWithin(p, scope)), ...filesNow]);
  const actions: RestoreAction[] = [];
  for (const path of [...paths].sort()) {
    const old = then.get(path);
    const current = fileNow(now, path);
    if (!old) {
      if (current) actions.push({ kind: 'extra', path, nowSha256: current.sha256 });
      continue;
    }
    if (old.sha256 === undefined || old.mode === undefined) {
      actions.push({ kind: 'unverifiable', path, reason: 'the backup has no sha256 or mode metadata' });
      continue;
    }
    if (!current) actions.push({ kind: 'restore', because: 'deleted', path, version: old });
    else if (current.sha256 === old.sha256 && current.size === old.size)
      actions.push({ kind: 'unchanged', path });
    else actions.push({ kind: 'restore', because: 'changed', path, version: old, nowSha256: current.sha256 });
  }
  return actions;
}
