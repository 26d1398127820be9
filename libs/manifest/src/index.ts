export {
  decodeEntry,
  encodeEntry,
  type FileEntry,
  governingIn,
  type ManifestEntry,
  type Tombstone,
} from './entries.ts';
export { fencedBody } from './fenced-body.ts';
export { type RollBackOutcome, rollBackIntent } from './intent-roll-back.ts';
export { KEY_PREFIX, livenessKey, manifestKeys } from './keys.ts';
export {
  createProcessLiveness,
  DEFAULT_LIVENESS_TTL_MS,
  isOwnerGone,
  type ProcessLiveness,
} from './liveness.ts';
export {
  createManifest,
  LockLostError,
  LockTimeoutError,
  type Manifest,
  type ManifestOptions,
  NotReplicatedError,
  type PathLock,
  type ReadPlan,
  type WriteIntent,
} from './manifest.ts';
