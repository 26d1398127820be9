export {
  decodeEntry,
  encodeEntry,
  type FileEntry,
  governingIn,
  type ManifestEntry,
  type Tombstone,
} from './entries.ts';
export { KEY_PREFIX, manifestKeys } from './keys.ts';
export {
  createManifest,
  LockTimeoutError,
  type Manifest,
  type ManifestOptions,
  NotReplicatedError,
  type PathLock,
} from './manifest.ts';
