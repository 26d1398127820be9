/** The bytes streamed into a backup did not match the expected sha256 or size; nothing was completed in S3. */
export class BackupChecksumError extends Error {
  readonly code = 'BACKUP_CHECKSUM_MISMATCH';
  override name = 'BackupChecksumError';
}

/** S3 could not be reached or answered 5xx: worth retrying later. The SDK's error is the `cause`. */
export class BackupUnavailableError extends Error {
  readonly code = 'BACKUP_UNAVAILABLE';
  override name = 'BackupUnavailableError';
}

/**
 * The S3 server cannot store the key because it maps keys to files and directories (versitygw's posix backend):
 * a parent path is a file, or the key is a directory. Versioning keeps deleted keys on disk, so a path that was a
 * file stays one. Retrying does not help.
 */
export class BackupConflictError extends Error {
  readonly code = 'BACKUP_PATH_CONFLICT';
  override name = 'BackupConflictError';
}

/** The bucket does not keep versions (and no override says that is fine): processes that write it refuse to start. */
export class BucketNotVersionedError extends Error {
  readonly code = 'BUCKET_NOT_VERSIONED';
  override name = 'BucketNotVersionedError';
}
