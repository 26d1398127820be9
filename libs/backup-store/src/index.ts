export {
  type BackupFile,
  type BackupObject,
  type BackupStore,
  type BackupVersion,
  type BucketVersioning,
  createBackupStore,
  type S3Settings,
} from './backup-store.ts';
export {
  BackupChecksumError,
  BackupConflictError,
  BackupUnavailableError,
  BucketNotVersionedError,
} from './errors.ts';
export { historiesOf, type KeyHistory, prunable, versionAt } from './history.ts';
export { pruneNoncurrentVersions } from './retention.ts';
export {
  ALLOW_UNVERSIONED_SETTING,
  checkBucketVersioning,
  type GuardLog,
  guardBucketVersioning,
  type VersioningCheck,
} from './versioning-guard.ts';
