// The S3 requests sent without the AWS SDK, signed here with Signature Version 4 over one keep-alive pool: backups'
// PutObject (the SDK's middleware stack cost about 1.4 ms of CPU per small backup, a fifth of the replicator's) and
// GetBucketVersioning (every process that writes the bucket asks it at start-up, and loading the SDK for that kept
// it resident in a gateway that never reads S3, ~6 MiB RSS at idle). Every other S3 call goes through the SDK.
import { createHash, createHmac } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { S3Settings } from './backup-store.ts';

// node:http via getBuiltinModule: an ESM import of it loads Node's bundled undici (apps/gateway/README.md, Memory).
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

/** The bucket's settings, with both deadlines decided. */
export type SignedS3Settings = Omit<S3Settings, 'requestTimeoutMs' | 'allowUnversioned' | 'retentionDays'> & {
  /** A request whose connection stays silent this long fails. */
  requestTimeoutMs: number;
  connectionTimeoutMs: number;
};

export interface SignedPut {
  key: string;
  /** A Buffer leaves with the head in one write, and is sent once more if a kept-alive connection was stale. */
  body: Readable | Buffer;
  size: number;
  /** Hex sha256 of body: it is the signed payload hash and the checksum S3 checks, so S3 stores no other bytes. */
  sha256: string;
  contentType: string;
  /** x-amz-meta-* values (ASCII). */
  metadata: Record<string, string>;
  /** Aborting destroys the request before its last byte: S3 completes nothing. */
  signal: AbortSignal;
}

export interface SignedRequest {
  method: 'GET' | 'PUT';
  /** The object's key; absent for a request to the bucket itself. */
  key?: string;
  /** The query in canonical form (names sorted, `name=value`), e.g. `versioning=`; '' for none. */
  query: string;
  /** Headers signed with the request (lower-case names), besides host, x-amz-date and x-amz-content-sha256. */
  headers: Record<string, string>;
  /** Hex sha256 of the body: the signed payload hash. */
  payloadSha256: string;
  /** A Buffer (or no body) leaves with the head in one write, and is sent once more on a stale kept-alive socket. */
  body?: Readable | Buffer;
  /** Aborting destroys the request before its last byte: S3 completes nothing. */
  signal: AbortSignal;
  /** What the request asks, in S3's words (PutObject, GetBucketVersioning): errors name it. */
  operation: string;
}

/**
 * S3's error answer, shaped as the SDK's errors are (`name` is S3's Code, `$metadata.httpStatusCode` the status),
 * so one classification (unavailable, path conflict) serves both.
 */
export class S3AnswerError extends Error {
  readonly $metadata: { httpStatusCode: number };
  constructor(operation: string, bucket: string, status: number, code: string, message: string) {
    const name = code || `HTTP${status}`;
    super(`S3 answered ${status} ${name} to ${operation} of bucket ${bucket}: ${message}`);
    this.name = name;
    this.$metadata = { httpStatusCode: status };
  }
}

/** A connection that stayed silent past its deadline (named as the SDK names it). */
class S3TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Answers here are a few hundred bytes (an error's XML, a versioning state); more is not S3 answering. */
const MAX_ANSWER_BYTES = 64 * 1024;
const EMPTY_SHA256 = createHash('sha256').digest('hex');
const SERVICE = 's3';

/** Where requests go: path style `<endpoint>/<bucket>/<key>`, else the bucket as the endpoint host's first label. */
function targetOf(settings: Pick<S3Settings, 'endpoint' | 'region' | 'bucket' | 'forcePathStyle'>) {
  const base = new URL(settings.endpoint ?? `https://s3.${settings.region}.amazonaws.com`);
  const basePath = base.pathname.replace(/\/+$/, '');
  const bucketPath = settings.forcePathStyle ? `${basePath}/${encodeSegment(settings.bucket)}` : basePath;
  return {
    protocol: base.protocol,
    hostname: base.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: base.port,
    host: settings.forcePathStyle ? base.host : `${settings.bucket}.${base.host}`,
    /** The encoded path of a key, or of the bucket itself (no key). */
    pathOf(key: string | undefined): string {
      if (key === undefined) return settings.forcePathStyle ? bucketPath : `${bucketPath}/`;
      return `${bucketPath}/${key.split('/').map(encodeSegment).join('/')}`;
    },
  };
}

/** The URL a request goes to (for tests and messages; requests are built from the same target). */
export function signedRequestUrl(
  settings: Pick<S3Settings, 'endpoint' | 'region' | 'bucket' | 'forcePathStyle'>,
  key: string | undefined,
  query: string,
): URL {
  const target = targetOf(settings);
  return new URL(`${target.protocol}//${target.host}${target.pathOf(key)}${query ? `?${query}` : ''}`);
}

export function createSignedS3(settings: SignedS3Settings) {
  const target = targetOf(settings);
  const transport = target.protocol === 'https:' ? https : http;
  const pool = new transport.Agent({ keepAlive: true });
  const signingKeys = new Map<string, Buffer>(); // by date: one HMAC chain per day

  function signingKey(date: string): Buffer {
    let key = signingKeys.get(date);
    if (!key) {
      const dateKey = hmac(`AWS4${settings.secretAccessKey}`, date);
      key = hmac(hmac(hmac(dateKey, settings.region), SERVICE), 'aws4_request');
      signingKeys.clear();
      signingKeys.set(date, key);
    }
    return key;
  }

  /** The request's headers with SigV4's authorization (every header is signed). */
  function signed(request: SignedRequest, path: string, now: Date): Record<string, string> {
    const amzDate = now.toISOString().replace(/[-:]|\.\d{3}/g, ''); // 20261201T154700Z
    const date = amzDate.slice(0, 8);
    const headers: Record<string, string> = {
      ...request.headers,
      host: target.host,
      'x-amz-content-sha256': request.payloadSha256,
      'x-amz-date': amzDate,
    };
    const names = Object.keys(headers).sort();
    const canonicalRequest = [
      request.method,
      path,
      request.query,
      ...names.map((name) => `${name}:${(headers[name] as string).trim()}`),
      '',
      names.join(';'),
      request.payloadSha256,
    ].join('\n');
    const scope = `${date}/${settings.region}/${SERVICE}/aws4_request`;
    const stringToSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
    const signature = createHmac('sha256', signingKey(date)).update(stringToSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${settings.accessKeyId}/${scope}, SignedHeaders=${names.join(';')}, Signature=${signature}`;
    return headers;
  }

  /**
   * Sends one request; resolves with the text of its 2xx answer. Rejects with S3AnswerError for any other answer,
   * a TimeoutError for a connection silent past its deadline, the signal's reason when aborted, else the
   * connection's own error.
   */
  async function send(request: SignedRequest): Promise<string> {
    const path = target.pathOf(request.key);
    try {
      return await attempt(request, path);
    } catch (err) {
      const resendable = request.body === undefined || Buffer.isBuffer(request.body);
      if (!resendable || !(err as { staleSocket?: boolean }).staleSocket) throw err;
      return await attempt(request, path);
    }
  }

  function attempt(request: SignedRequest, path: string): Promise<string> {
    const { body, signal } = request;
    return new Promise<string>((resolve, reject) => {
      let settled = false;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', aborted);
        outgoing.destroy();
        if (body !== undefined && !Buffer.isBuffer(body)) body.unpipe(outgoing);
        reject(err);
      };
      const aborted = () => fail(signal.reason);
      const outgoing = transport.request({
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: request.method,
        path: request.query ? `${path}?${request.query}` : path,
        agent: pool,
        headers: signed(request, path, new Date()),
      });
      const connecting = setTimeout(
        () => fail(new S3TimeoutError(`no connection to S3 within ${settings.connectionTimeoutMs} ms`)),
        settings.connectionTimeoutMs,
      );
      outgoing.once('socket', (socket) => {
        const connected = () => clearTimeout(connecting);
        if (socket.connecting) socket.once('connect', connected);
        else connected();
      });
      outgoing.setTimeout(settings.requestTimeoutMs, () =>
        fail(new S3TimeoutError(`S3 stayed silent for ${settings.requestTimeoutMs} ms`)),
      );
      // A kept-alive connection S3 had closed meanwhile: nothing of this request was taken.
      outgoing.once('error', (err: NodeJS.ErrnoException) =>
        fail(
          Object.assign(err, {
            staleSocket: outgoing.reusedSocket && (err.code === 'ECONNRESET' || err.code === 'EPIPE'),
          }),
        ),
      );
      outgoing.once('close', () => clearTimeout(connecting));
      if (signal.aborted) return aborted();
      signal.addEventListener('abort', aborted, { once: true });
      outgoing.once('response', (response: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let length = 0;
        response.on('data', (chunk: Buffer) => {
          length += chunk.length;
          if (length > MAX_ANSWER_BYTES)
            fail(new Error(`the answer to ${request.operation} is over ${MAX_ANSWER_BYTES} bytes`));
          else chunks.push(chunk);
        });
        response.once('error', fail);
        response.once('end', () => {
          const status = response.statusCode ?? 0;
          const text = Buffer.concat(chunks).toString('utf8');
          if (status >= 200 && status < 300) {
            if (settled) return;
            settled = true;
            signal.removeEventListener('abort', aborted);
            resolve(text);
            return;
          }
          const code = xmlField(text, 'Code');
          const message = xmlField(text, 'Message') || text.slice(0, 200);
          fail(new S3AnswerError(request.operation, settings.bucket, status, code, message));
        });
      });
      if (body === undefined || Buffer.isBuffer(body)) outgoing.end(body);
      else body.pipe(outgoing);
    });
  }

  return {
    send,
    /** PutObject; resolves once S3 stored the object. */
    async putObject(put: SignedPut): Promise<void> {
      const headers: Record<string, string> = {
        'content-length': String(put.size),
        'content-type': put.contentType,
        'x-amz-checksum-sha256': Buffer.from(put.sha256, 'hex').toString('base64'),
      };
      for (const [name, value] of Object.entries(put.metadata))
        headers[`x-amz-meta-${name.toLowerCase()}`] = value;
      await send({
        method: 'PUT',
        key: put.key,
        query: '',
        headers,
        payloadSha256: put.sha256,
        body: put.body,
        signal: put.signal,
        operation: 'PutObject',
      });
    },
    /** A GET with no body (the bucket's own state: `query` names it). */
    getBucket(query: string, operation: string, signal: AbortSignal): Promise<string> {
      return send({ method: 'GET', query, headers: {}, payloadSha256: EMPTY_SHA256, signal, operation });
    },
    close() {
      pool.destroy();
    },
  };
}

export type SignedS3 = ReturnType<typeof createSignedS3>;

/** SigV4's URI encoding of one path segment (S3 encodes once): everything but A-Z a-z 0-9 - . _ ~. */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** The text of the first `<name>` element, entities decoded ('' when absent): S3's answers here are flat. */
export function xmlField(xml: string, name: string): string {
  const text = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml)?.[1] ?? '';
  return text.replace(/&(lt|gt|quot|apos|amp);/g, (_m, entity: string) => XML_ENTITIES[entity] ?? '');
}

const XML_ENTITIES: Record<string, string> = { lt: '<', gt: '>', quot: '"', apos: "'", amp: '&' };

const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
const sha256Hex = (data: string) => createHash('sha256').update(data).digest('hex');
