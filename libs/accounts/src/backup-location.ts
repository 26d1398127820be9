/**
 * Where account DB backups live in the S3 bucket: beside users' files, under an owner name that is never a
 * charm_id (UUIDs), so scans of users' files skip it.
 */
export const ACCOUNT_BACKUP_OWNER = '_cring';
export const accountBackupPath = (backend: string) => `/accounts/${backend}.sqlite`;
