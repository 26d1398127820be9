export {
  type BackupFile,
  type BackupObject,
  type BackupStore,
  createBackupStore,
  type S3Settings,
} from './backup-store.ts';
export { BackupChecksumError, BackupConflictError, BackupUnavailableError } from './errors.ts';
