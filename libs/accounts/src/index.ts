export {
  type AccountEncryptKey,
  type AccountPublicKey,
  type AccountSeq,
  type AccountUser,
  compareSqlTime,
  normalizeUser,
  type SqlTime,
  sameShape,
  sameUser,
} from './account-state.ts';
export {
  type ApplyPlan,
  type ApplyResult,
  applyAccountStates,
  type BackendChanges,
  plannedUsers,
} from './apply.ts';
export { ACCOUNT_BACKUP_OWNER, accountBackupPath } from './backup-location.ts';
export {
  type AccountBaseStore,
  type AccountBaseWrite,
  type AccountMarkers,
  createMemoryAccountBaseStore,
  createRedisAccountBaseStore,
} from './base-store.ts';
export {
  accountsDbPath,
  type BackendDb,
  MARKER_TABLE,
  openBackendDb,
  readAccount,
  readAllAccounts,
  readMarker,
  readMarkerAndAccounts,
} from './charm-db.ts';
export {
  AccountSyncBusyError,
  AccountSyncLockLostError,
  BackendInitError,
  BackendUnavailableError,
} from './errors.ts';
export { accountKeys } from './keys.ts';
export {
  type BackendAccountsState,
  type BaseEntry,
  type MergeInput,
  type MergeResult,
  mergeAccountStates,
  referenceState,
} from './merge.ts';
export { initBackendFrom, SERVER_KEY_FILE, snapshotAccountsDb } from './snapshot.ts';
export { backendsKnowingUser, type SyncOptions, type SyncReport, syncAccounts } from './sync.ts';
