export { createAgent } from './agent.ts';
export { cacheBinDir, findBinaries, findOnPath, repoRoot } from './binaries.ts';
export {
  type CharmBackend,
  type CharmBackendInfo,
  createCharmBackend,
  SERVER_KEY_FILE,
} from './charm-backend.ts';
export {
  type Cluster,
  type ClusterOptions,
  type ClusterTopology,
  centralPermissions,
  startCluster,
  writeTopology,
} from './cluster.ts';
export { freePort, freePorts } from './free-port.ts';
export { ManagedProcess } from './managed-process.ts';
export { acceptsTcp, answersOk } from './probes.ts';
export { createRedis, createRedisSentinelSet } from './redis.ts';
export type { S3Info } from './s3-server.ts';
export { startScratchRedis } from './scratch-redis.ts';
