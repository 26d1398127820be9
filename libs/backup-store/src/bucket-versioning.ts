// GetBucketVersioning as one signed GET, without the AWS SDK: every process that writes the bucket asks it at
// start-up, and loading the SDK for that kept it resident in a gateway that never reads S3 (~6 MiB RSS at idle).
// Everything else goes through the SDK (backup-store.ts).
import { createHash, createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { BucketVersioning, S3Settings } from './backup-store.ts';

// node:http via getBuiltinModule: an ESM import of it loads Node's bundled undici (apps/gateway/README.md, Memory).
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

const EMPTY_SHA256 = createHash('sha256').digest('hex');
/** The answer is a few hundred bytes; more is not S3 answering this request. */
const MAX_ANSWER_BYTES = 64 * 1024;

/** A non-2xx answer, with S3's own code and message, and the status where the store's error mapping reads it. */
export class S3AnswerError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(bucket: string, status: number, code: string, message: string) {
    super(`S3 answered ${status} ${code} to GetBucketVersioning of bucket ${bucket}: ${message}`);
    this.name = code;
    this.$metadata = { httpStatusCode: status };
  }
}

/** Where the request goes: path style `<endpoint>/<bucket>`, else the bucket as the endpoint's first label. */
export function versioningUrl(
  settings: Pick<S3Settings, 'endpoint' | 'region' | 'bucket' | 'forcePathStyle'>,
): URL {
  const endpoint = new URL(settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`);
  const base = endpoint.pathname.replace(/\/+$/, '');
  if (settings.forcePathStyle) endpoint.pathname = `${base}/${settings.bucket}`;
  else {
    endpoint.hostname = `${settings.bucket}.${endpoint.hostname}`;
    endpoint.pathname = `${base}/`;
  }
  endpoint.search = '?versioning';
  return endpoint;
}

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();

/** AWS Signature Version 4 headers for a GET with an empty body and the single query parameter `versioning`. */
export function signVersioningGet(
  url: URL,
  settings: Pick<S3Settings, 'region' | 'accessKeyId' | 'secretAccessKey'>,
  now: Date,
): Record<string, string> {
  const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, ''); // 20261201T154700Z
  const day = amzDate.slice(0, 8);
  const scope = `${day}/${settings.region}/s3/aws4_request`;
  const signedHeaders = 'host;x-amz-content-sha256;x-amz-date';
  const canonicalRequest = [
    'GET',
    url.pathname,
    'versioning=',
    `host:${url.host}\nx-amz-content-sha256:${EMPTY_SHA256}\nx-amz-date:${amzDate}\n`,
    signedHeaders,
    EMPTY_SHA256,
  ].join('\n');
  const stringToSign = [
    'AWS4-HMAC-SHA256',
    amzDate,
    scope,
    createHash('sha256').update(canonicalRequest).digest('hex'),
  ].join('\n');
  let key = hmac(`AWS4${settings.secretAccessKey}`, day);
  for (const part of [settings.region, 's3', 'aws4_request']) key = hmac(key, part);
  const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
  return {
    authorization: `AWS4-HMAC-SHA256 Credential=${settings.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    'x-amz-content-sha256': EMPTY_SHA256,
    'x-amz-date': amzDate,
  };
}

/**
 * The bucket's versioning state. Throws S3AnswerError for an answer other than 200, and the connection's own error
 * (with its code, or a TimeoutError past the deadline) when there is no answer.
 */
export async function getBucketVersioning(
  settings: S3Settings,
  timeoutMs: number,
): Promise<BucketVersioning> {
  const url = versioningUrl(settings);
  const headers = signVersioningGet(url, settings, new Date());
  const signal = AbortSignal.timeout(timeoutMs);
  const send = url.protocol === 'https:' ? https.request : http.request;
  let status: number;
  let text: string;
  try {
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      send(url, { method: 'GET', headers, signal }, resolve).on('error', reject).end();
    });
    status = response.statusCode ?? 0;
    text = await readAnswer(response);
  } catch (err) {
    if (signal.aborted)
      throw Object.assign(new Error(`no answer in ${timeoutMs} ms`), { name: 'TimeoutError' });
    throw err;
  }
  if (status !== 200) {
    throw new S3AnswerError(
      settings.bucket,
      status,
      xmlField(text, 'Code') ?? `HTTP${status}`,
      xmlField(text, 'Message') ?? text.slice(0, 200),
    );
  }
  const state = xmlField(text, 'Status');
  return state === 'Enabled' || state === 'Suspended' ? state : 'Off';
}

async function readAnswer(response: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ANSWER_BYTES) {
      response.destroy();
      throw new Error(`the answer to GetBucketVersioning is over ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The text of the first `<name>` element (S3's answers here are flat: no nesting of the same name). */
function xmlField(xml: string, name: string): string | undefined {
  return new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1];
}
