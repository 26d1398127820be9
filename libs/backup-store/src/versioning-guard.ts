// The start-up check of every process that writes the bucket: without versioning an overwrite or a delete
// destroys the only other copy, and `cring restore` has no history to read.
import type { BackupStore, S3Settings } from './backup-store.ts';
import { BackupUnavailableError, BucketNotVersionedError } from './errors.ts';

export const ALLOW_UNVERSIONED_SETTING = 'CRING_S3_ALLOW_UNVERSIONED';

export type VersioningCheck = 'enabled' | 'unversioned, allowed' | 'unreachable';

/**
 * Enabled: fine. Anything else: BucketNotVersionedError, saying how to turn versioning on, unless
 * `allowUnversioned` (then a loud warning). S3 unreachable: 'unreachable' and a warning; the caller checks again
 * later (`watchBucketVersioning`), since S3 being down must not keep the gateway from serving.
 */
export async function checkBucketVersioning(
  store: BackupStore,
  options: { endpoint?: string; allowUnversioned: boolean; warn: (message: string) => void },
): Promise<VersioningCheck> {
  let status: Awaited<ReturnType<BackupStore['versioning']>>;
  try {
    status = await store.versioning();
  } catch (err) {
    if (!(err instanceof BackupUnavailableError)) throw err;
    options.warn(`could not check that bucket ${store.bucket} is versioned: ${err.message}; checking again`);
    return 'unreachable';
  }
  if (status === 'Enabled') return 'enabled';
  const endpoint = options.endpoint ? ` --endpoint-url ${options.endpoint}` : '';
  const problem =
    `S3 bucket ${store.bucket} has versioning ${status === 'Off' ? 'never enabled' : 'suspended'}: ` +
    'an overwrite or delete would destroy the backup and `cring restore` would have no history';
  if (options.allowUnversioned) {
    options.warn(
      `${problem}. Running anyway because ${ALLOW_UNVERSIONED_SETTING}=true: THE BACKUP KEEPS NO HISTORY`,
    );
    return 'unversioned, allowed';
  }
  throw new BucketNotVersionedError(
    `${problem}. Enable it: aws s3api put-bucket-versioning --bucket ${store.bucket}${endpoint} ` +
      '--versioning-configuration Status=Enabled (versitygw needs its posix backend started with ' +
      `--versioning-dir), or set ${ALLOW_UNVERSIONED_SETTING}=true to run without history`,
  );
}

/** What the guard logs through (a pino logger fits). */
export interface GuardLog {
  warn(message: string): void;
  error(message: string): void;
}

/**
 * The start-up check of the gateway, replicator and healer: throws BucketNotVersionedError (the process refuses
 * to start). While S3 does not answer, checks again every `retryMs` in the background; a refusal then is logged
 * and ends the process (exit code 1), since it must not keep writing a bucket that keeps no history.
 */
export async function guardBucketVersioning(
  store: BackupStore,
  settings: Pick<S3Settings, 'endpoint' | 'allowUnversioned'>,
  log: GuardLog,
  options: { retryMs?: number; refused?: (err: BucketNotVersionedError) => void } = {},
): Promise<{ stop(): void }> {
  const check = {
    endpoint: settings.endpoint,
    allowUnversioned: settings.allowUnversioned ?? false,
    warn: (message: string) => log.warn(message),
  };
  const refused =
    options.refused ??
    ((err: BucketNotVersionedError) => {
      log.error(err.message);
      process.exit(1);
    });
  if ((await checkBucketVersioning(store, check)) !== 'unreachable') return { stop() {} };
  let timer: NodeJS.Timeout | undefined;
  const again = () => {
    timer = setTimeout(() => {
      checkBucketVersioning(store, check).then(
        (result) => {
          if (result === 'unreachable') again();
        },
        (err: unknown) => {
          if (err instanceof BucketNotVersionedError) refused(err);
          else again();
        },
      );
    }, options.retryMs ?? 30_000);
    timer.unref();
  };
  again();
  return { stop: () => clearTimeout(timer) };
}
