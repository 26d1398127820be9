export { localClusterTopologyFile, withLocalClusterSettings } from './local-cluster-settings.ts';
export {
  backendsFrom,
  booleanField,
  dataDirsFrom,
  issuesOf,
  requiredIssuer,
  requiredRedisUrl,
  type S3Settings,
  s3From,
  sharedEnvFields,
} from './shared-env.ts';
