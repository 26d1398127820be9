export {
  type BackendClient,
  type BackendClientOptions,
  BackendHttpError,
  BackendUnavailableError,
  ChecksumMismatchError,
  createBackendClient,
  type FileInfo,
  PathIsDirectoryError,
} from './backend-client.ts';
export { generateSshKeyPair, ProbeError, probeHttp, probeSsh } from './backend-probes.ts';
export { type Backend, formatBackends, parseBackends } from './backends.ts';
export { ancestorsOf, cleanFsPath, fsPathFromUrl, isWithin } from './fs-path.ts';
export {
  bearerToken,
  JwtError,
  type JwtErrorReason,
  type MintCharmJwtOptions,
  mintCharmJwt,
  type VerifyCharmJwtOptions,
  verifyCharmJwt,
} from './jwt.ts';
export { singleFileMultipart } from './multipart.ts';
export {
  loadServerKey,
  parseOpenSshPublicKey,
  parseServerKey,
  publicKeyFromJwks,
  type ServerKey,
} from './server-key.ts';
