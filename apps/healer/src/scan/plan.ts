/**
 * What the scan concludes for one path, from what it found (table rows F1–F7, and P4's choice). Pure: no I/O.
 *
 * A path's governing manifest entry decides (`governingIn`):
 * - a file entry: every owner and the bucket must hold that version. A copy "matches" when its size is the
 *   entry's (and, once hashed, its sha256). Other bytes written after the entry's version was committed, on as
 *   many backends as a majority of the owners (stand-ins included), are never replaced by it (`keep-newer`) nor
 *   pruned: they may be an acknowledged write the manifest lost (Redis lost its tail), and an older version must
 *   never overwrite an acknowledged newer one. A missing or wrong copy on an owner is replicated from the backends
 *   whose copies match, or, when none does, restored from S3 if the object's sha256 is the version's. The bucket
 *   gets a backup from the matching backends.
 * - a tombstone: every copy it covers, on any backend and in S3, is deleted (a tombstone always wins).
 * - nothing: the file is live and adopted (never deleted): the copy held by most owners wins, ties going to the
 *   earliest backend in the user's preference list (`chooseAdoption`).
 */
import { S3_TARGET } from '@cring/jobs';
import type { FileEntry } from '@cring/manifest';
import type { CopyInfo, HashedCopy } from './inventory.ts';

/** A backend's copy of the path; sha256 once it was hashed. */
export interface Copy extends CopyInfo {
  sha256?: string;
}

export type S3State =
  | { state: 'unreachable' }
  | { state: 'absent' }
  /** sha256: the object's metadata (when fetched); hashed: the sha256 of its bytes (deep scans). */
  | { state: 'present'; size: number; sha256?: string; hashed?: string };

export interface FileFacts {
  entry: FileEntry;
  /** The user's owners, in preference order. */
  owners: readonly string[];
  /** Every configured backend in the user's preference order. */
  preference: readonly string[];
  /** Backends whose listing (and hashing, if any) succeeded. */
  reachable: ReadonlySet<string>;
  copies: ReadonlyMap<string, Copy>;
  s3: S3State;
  deep: boolean;
}

export type ProblemKind = 'missing' | 'size-mismatch' | 'hash-mismatch';

export type Repair =
  | { target: string; action: 'replicate'; sources: string[] }
  | { target: string; action: 'restore' }
  | { target: string; action: 'backup'; sources: string[] }
  | { target: string; action: 'keep-newer'; modifiedMs: number }
  | { target: string; action: 'unrepairable'; reason: string };

export interface FileVerdict {
  problems: { target: string; kind: ProblemKind }[];
  repairs: Repair[];
  /** Backends whose copy matches the entry: holders first, then preference order. */
  verifiedSources: string[];
  /** Listed as holders, but their copy is missing or wrong. */
  holdersToRemove: string[];
  /** Owners whose copy was verified by sha256 but are not listed as holders. */
  holdersToAdd: string[];
  /** Non-owners holding a copy while every owner holds a matching one (pruning re-verifies by hash first). */
  prunable: string[];
  /** No backend matches and the object's sha256 is not known yet: fetch it (HEAD) and classify again. */
  needsS3Sha256: boolean;
}

export function copyMatches(copy: Copy | undefined, entry: FileEntry, deep: boolean): boolean {
  if (!copy || copy.size !== entry.size) return false;
  return copy.sha256 !== undefined ? copy.sha256 === entry.sha256 : !deep;
}

function s3Matches(s3: S3State, entry: FileEntry, deep: boolean): boolean {
  if (s3.state !== 'present' || s3.size !== entry.size) return false;
  if (s3.sha256 !== undefined && s3.sha256 !== entry.sha256) return false;
  if (s3.hashed !== undefined && s3.hashed !== entry.sha256) return false;
  return !deep || s3.hashed !== undefined;
}

/** The bucket holds this version: its sha256 metadata says so (and its bytes, when they were hashed). */
export function s3Restorable(s3: S3State, entry: FileEntry): boolean {
  return (
    s3.state === 'present' &&
    s3.size === entry.size &&
    s3.sha256 === entry.sha256 &&
    (s3.hashed === undefined || s3.hashed === entry.sha256)
  );
}

function problemKind(found: { size: number } | undefined, entry: FileEntry): ProblemKind {
  if (!found) return 'missing';
  return found.size !== entry.size ? 'size-mismatch' : 'hash-mismatch';
}

export function classifyFile(facts: FileFacts): FileVerdict {
  const { entry, owners, reachable, copies, s3, deep } = facts;
  const ordered = [...new Set([...entry.holders, ...facts.preference])];
  const verifiedSources = ordered.filter(
    (backend) => reachable.has(backend) && copyMatches(copies.get(backend), entry, deep),
  );
  const verdict: FileVerdict = {
    problems: [],
    repairs: [],
    verifiedSources,
    holdersToRemove: [],
    holdersToAdd: [],
    prunable: [],
    needsS3Sha256: false,
  };
  const restorable = s3Restorable(s3, entry);
  const newerAcknowledgeable = newerQuorumCopies(facts);

  for (const owner of owners) {
    if (!reachable.has(owner)) continue;
    const copy = copies.get(owner);
    if (copyMatches(copy, entry, deep)) {
      if (copy?.sha256 === entry.sha256 && !entry.holders.includes(owner)) verdict.holdersToAdd.push(owner);
      continue;
    }
    verdict.problems.push({ target: owner, kind: problemKind(copy, entry) });
    if (entry.holders.includes(owner)) verdict.holdersToRemove.push(owner);
    if (copy && newerAcknowledgeable.has(owner)) {
      verdict.repairs.push({ target: owner, action: 'keep-newer', modifiedMs: copy.modifiedMs as number });
    } else if (verifiedSources.length > 0) {
      verdict.repairs.push({ target: owner, action: 'replicate', sources: verifiedSources });
    } else if (restorable) {
      verdict.repairs.push({ target: owner, action: 'restore' });
    } else if (s3.state === 'present' && s3.sha256 === undefined && s3.size === entry.size) {
      verdict.needsS3Sha256 = true;
    } else {
      verdict.repairs.push({
        target: owner,
        action: 'unrepairable',
        reason: `no reachable backend holds version ${entry.version} and ${describeS3(s3)}`,
      });
    }
  }

  // Holders that are not owners (stand-ins, former owners): stop trusting a missing or wrong copy.
  for (const holder of entry.holders) {
    if (owners.includes(holder) || !reachable.has(holder)) continue;
    if (!copyMatches(copies.get(holder), entry, deep)) verdict.holdersToRemove.push(holder);
  }

  if (s3.state !== 'unreachable' && !s3Matches(s3, entry, deep)) {
    const found = s3.state === 'present' ? { size: s3.size } : undefined;
    verdict.problems.push({ target: S3_TARGET, kind: problemKind(found, entry) });
    verdict.repairs.push(
      verifiedSources.length > 0
        ? { target: S3_TARGET, action: 'backup', sources: verifiedSources }
        : {
            target: S3_TARGET,
            action: 'unrepairable',
            reason: `no reachable backend holds version ${entry.version} to back up`,
          },
    );
  }

  const everyOwnerHolds = owners.every(
    (owner) => reachable.has(owner) && copyMatches(copies.get(owner), entry, deep),
  );
  // Never prune what may be the only copies of an acknowledged newer write.
  if (everyOwnerHolds)
    verdict.prunable = [...copies.keys()].filter(
      (backend) => !owners.includes(backend) && !newerAcknowledgeable.has(backend),
    );
  return verdict;
}

/** The copy was written after the entry's version was committed (a write the version cannot be newer than). */
export function isNewerThan(copy: Copy, entry: FileEntry): boolean {
  return copy.modifiedMs !== undefined && Number.isFinite(copy.modifiedMs) && copy.modifiedMs > entry.atMs;
}

/**
 * Backends holding the same other bytes, written after the entry's version, as many as a majority of the owners:
 * the shape of an acknowledged write (a quorum holds it, stand-ins of a sloppy write included) that the manifest
 * lost. A lone newer copy is damage (a truncation, a stray write) and is repaired as usual.
 */
function newerQuorumCopies(facts: FileFacts): Set<string> {
  const { entry, owners, reachable, copies, deep } = facts;
  const majority = Math.floor(owners.length / 2) + 1;
  const groups = new Map<string, string[]>();
  for (const [backend, copy] of copies) {
    if (!reachable.has(backend) || copyMatches(copy, entry, deep) || !isNewerThan(copy, entry)) continue;
    const key = `${copy.size}:${copy.sha256 ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), backend]);
  }
  return new Set([...groups.values()].filter((group) => group.length >= majority).flat());
}

/** What governs a path, for row L1: the entry's commit time, and (for a file) the bytes it names. */
export interface LostWriteFacts {
  governing: { atMs: number } & ({ kind: 'tombstone' } | FileEntry);
  owners: readonly string[];
  preference: readonly string[];
  reachable: ReadonlySet<string>;
  /** Every backend's copy, hashed (sha256 set), with the listing's mtime. */
  copies: ReadonlyMap<string, Copy>;
}

/**
 * Row L1: the same bytes, hashed, written (backend mtime) after the governing entry was committed, on as many
 * backends as a majority of the owners: an acknowledged write the manifest lost (Redis restored from an older
 * copy, or its last second lost). Those bytes, held by those backends (in preference order), are the version
 * that replaces the entry; undefined when no such quorum agrees.
 */
export function lostWrite(facts: LostWriteFacts): AdoptionChoice | undefined {
  const { governing, owners, preference, reachable, copies } = facts;
  const majority = Math.floor(owners.length / 2) + 1;
  const rank = (backend: string) => {
    const index = preference.indexOf(backend);
    return index === -1 ? Number.MAX_SAFE_INTEGER : index;
  };
  const groups = new Map<string, { sha256: string; size: number; mode: number; backends: string[] }>();
  for (const [backend, copy] of copies) {
    if (!reachable.has(backend) || copy.sha256 === undefined) continue;
    if (
      copy.modifiedMs === undefined ||
      !Number.isFinite(copy.modifiedMs) ||
      copy.modifiedMs <= governing.atMs
    )
      continue;
    if (governing.kind === 'file' && copyMatches(copy, governing, true)) continue;
    const key = `${copy.sha256}:${copy.size}`;
    const group = groups.get(key) ?? { sha256: copy.sha256, size: copy.size, mode: copy.mode, backends: [] };
    group.backends.push(backend);
    groups.set(key, group);
  }
  const [best, ...others] = [...groups.values()]
    .filter((group) => group.backends.length >= majority)
    .map((group) => ({ ...group, backends: group.backends.sort((a, b) => rank(a) - rank(b)) }))
    .sort((a, b) => b.backends.length - a.backends.length);
  if (!best) return undefined;
  return {
    sha256: best.sha256,
    size: best.size,
    mode: best.mode,
    holders: best.backends,
    others: others.map(({ sha256, size, backends }) => ({ sha256, size, backends })),
  };
}

function describeS3(s3: S3State): string {
  switch (s3.state) {
    case 'unreachable':
      return 'S3 is unreachable';
    case 'absent':
      return 'the bucket has no backup of it';
    case 'present':
      return 'the backup in the bucket is another version';
  }
}

export interface AdoptionChoice {
  sha256: string;
  size: number;
  mode: number;
  /** The backends holding the chosen bytes, in preference order. */
  holders: string[];
  /** The other versions found, if the copies disagree. */
  others: { sha256: string; size: number; backends: string[] }[];
}

/**
 * Which copy of a file the manifest does not know becomes its first version: the bytes held by most owners;
 * a tie goes to the bytes whose holder comes first in the user's preference list.
 */
export function chooseAdoption(
  copies: ReadonlyMap<string, HashedCopy & { mode: number }>,
  owners: readonly string[],
  preference: readonly string[],
): AdoptionChoice | undefined {
  const rank = (backend: string) => {
    const index = preference.indexOf(backend);
    return index === -1 ? Number.MAX_SAFE_INTEGER : index;
  };
  const groups = new Map<string, { sha256: string; size: number; backends: string[] }>();
  for (const [backend, copy] of copies) {
    const key = `${copy.sha256}:${copy.size}`;
    const group = groups.get(key) ?? { sha256: copy.sha256, size: copy.size, backends: [] };
    group.backends.push(backend);
    groups.set(key, group);
  }
  const ranked = [...groups.values()]
    .map((group) => ({
      ...group,
      backends: group.backends.sort((a, b) => rank(a) - rank(b)),
      owners: group.backends.filter((b) => owners.includes(b)).length,
    }))
    .sort((a, b) => b.owners - a.owners || rank(a.backends[0] as string) - rank(b.backends[0] as string));
  const [best, ...others] = ranked;
  if (!best) return undefined;
  const first = copies.get(best.backends[0] as string);
  return {
    sha256: best.sha256,
    size: best.size,
    mode: first?.mode ?? 0,
    holders: best.backends,
    others: others.map(({ sha256, size, backends }) => ({ sha256, size, backends })),
  };
}
