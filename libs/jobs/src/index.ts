export type {
  AccountSyncJob,
  BackendJob,
  DeleteJob,
  EncryptKeyJob,
  FileVersion,
  ReplicateJob,
  RestoreJob,
  S3Job,
  SeqJob,
} from './payloads.ts';
export { fileVersion } from './payloads.ts';
export {
  ACCOUNTS_QUEUE,
  backendQueueName,
  createJobQueues,
  DEFAULT_JOB_OPTIONS,
  failedAdds,
  HEALER_QUEUE,
  healerKeys,
  type JobAdd,
  type JobQueues,
  jobIdOf,
  QUEUE_PREFIX,
  S3_QUEUE,
  S3_TARGET,
  s3LockName,
} from './queues.ts';
