export { localClusterTopologyFile, withLocalClusterSettings } from './local-cluster-settings.ts';
export {
  connectRedis,
  describeRedis,
  missingRedis,
  type RedisSettings,
  redisEnvFields,
  redisFrom,
} from './redis.ts';
export {
  type AgentAddress,
  agentsFrom,
  backendsFrom,
  booleanField,
  issuesOf,
  requiredIssuer,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from './shared-env.ts';
