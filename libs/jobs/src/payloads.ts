// Job payloads hold ids, versions and hashes: never file bytes, never user tokens. Workers re-read bytes from the
// `sources` (owners that acknowledged the version) and check sha256 before writing.

/** Copy one file version to the queue's backend. */
export interface ReplicateJob {
  kind: 'replicate';
  charmId: string;
  path: string;
  version: number;
  sha256: string;
  size: number;
  mode: number;
  sources: string[];
}

/** Apply a tombstone (recursive delete of path) on the queue's backend. */
export interface DeleteJob {
  kind: 'delete';
  charmId: string;
  path: string;
  version: number;
}

/** Replay an encrypt key (with its fixed created_at) on a backend that missed the fan-out. */
export interface EncryptKeyJob {
  kind: 'encrypt-key';
  charmId: string;
  encryptKey: { id: string; key: string; public_key: string; created_at: string };
}

/** Bring a backend's seq counter for (user, name) up to at least `atLeast`. */
export interface SeqJob {
  kind: 'seq';
  charmId: string;
  name: string;
  atLeast: number;
}

/**
 * Copy a file version from the S3 backup to the queue's backend, when no backend holds it any more. The worker
 * checks the bytes against sha256 while copying, so a wrong or stale object never replaces anything.
 */
export interface RestoreJob {
  kind: 'restore';
  charmId: string;
  path: string;
  version: number;
  sha256: string;
  size: number;
  mode: number;
}

export type BackendJob = ReplicateJob | DeleteJob | EncryptKeyJob | SeqJob | RestoreJob;

/** A file version as the copy, restore and backup jobs name it. */
export type FileVersion = Omit<RestoreJob, 'kind'>;

/** The version of `path` that a manifest entry names, as jobs carry it. */
export function fileVersion(
  charmId: string,
  path: string,
  entry: { version: number; sha256: string; size: number; mode: number },
): FileVersion {
  return { charmId, path, version: entry.version, sha256: entry.sha256, size: entry.size, mode: entry.mode };
}

/** Copy a file version to the S3 bucket (`backup`) or remove what a tombstone covers (`delete`). */
export type S3Job = (Omit<ReplicateJob, 'kind'> & { kind: 'backup' }) | DeleteJob;

/** Converge account rows (users, keys, encrypt keys, names, seqs) across backends; all users, or only these. */
export interface AccountSyncJob {
  kind: 'account-sync';
  charmIds?: string[];
}
