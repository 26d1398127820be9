// GetBucketVersioning as one signed GET (signed-s3.ts), without the AWS SDK: every process that writes the bucket
// asks it at start-up, and loading the SDK for that kept it resident in a gateway that never reads S3.
import type { BucketVersioning } from './backup-store.ts';
import { type SignedS3, xmlField } from './signed-s3.ts';

/**
 * The bucket's versioning state. Throws S3AnswerError for an answer other than 2xx, a TimeoutError past the
 * deadline, and the connection's own error (with its code) when there is no answer.
 */
export async function getBucketVersioning(s3: SignedS3, timeoutMs: number): Promise<BucketVersioning> {
  const signal = AbortSignal.timeout(timeoutMs);
  let text: string;
  try {
    text = await s3.getBucket('versioning=', 'GetBucketVersioning', signal);
  } catch (err) {
    if (signal.aborted)
      throw Object.assign(new Error(`no answer in ${timeoutMs} ms`), { name: 'TimeoutError' });
    throw err;
  }
  const state = xmlField(text, 'Status');
  return state === 'Enabled' || state === 'Suspended' ? state : 'Off';
}
