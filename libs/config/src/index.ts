export { localClusterTopologyFile, withLocalClusterSettings } from './local-cluster-settings.ts';
export {
  type AgentAddress,
  agentsFrom,
  backendsFrom,
  booleanField,
  issuesOf,
  requiredIssuer,
  requiredRedisUrl,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from './shared-env.ts';
