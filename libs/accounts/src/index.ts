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
export {
  type AccountSnapshot,
  type BackendAccounts,
  localBackendAccounts,
} from './backend-accounts.ts';
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
  BUSY_TIMEOUT_MS,
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
  ApplyRefusedError,
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
export {
  initBackendFrom,
  prepareBackend,
  restoreAccountsDb,
  SERVER_KEY_FILE,
  snapshotAccountsDb,
} from './snapshot.ts';
export { backendsKnowingUser, type SyncOptions, type SyncReport, syncAccounts } from './sync.ts';
