export type {
  AccountSyncJob,
  BackendJob,
  DeleteJob,
  EncryptKeyJob,
  ReplicateJob,
  RestoreJob,
  S3Job,
  SeqJob,
} from './payloads.ts';
export {
  ACCOUNTS_QUEUE,
  backendQueueName,
  createJobQueues,
  DEFAULT_JOB_OPTIONS,
  HEALER_QUEUE,
  healerKeys,
  type JobQueues,
  jobIdOf,
  QUEUE_PREFIX,
  S3_QUEUE,
  S3_TARGET,
} from './queues.ts';
