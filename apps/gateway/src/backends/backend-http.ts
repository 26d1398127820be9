import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '@cring/charm';
import { Agent as UndiciAgent } from 'undici';
import { backendTarget } from './backend-url.ts';

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; framing is re-derived on each hop.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Raw header pairs without hop-by-hop headers (and without `drop`), names and values as received. */
export function forwardableHeaders(rawHeaders: readonly string[], drop: readonly string[] = []): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = (rawHeaders[i] as string).toLowerCase();
    if (!HOP_BY_HOP.has(name) && !drop.includes(name))
      out.push(rawHeaders[i] as string, rawHeaders[i + 1] as string);
  }
  return out;
}

/** No response head came back: refused, reset, timed out. */
export class BackendTransportError extends Error {
  readonly backend: string;
  constructor(backend: string, cause: unknown) {
    super(`${(cause as NodeJS.ErrnoException)?.code ?? (cause as Error)?.message ?? 'transport error'}`, {
      cause,
    });
    this.name = 'BackendTransportError';
    this.backend = backend;
  }
}

export interface BackendRequest {
  method: string;
  /** Path and query, as sent to the backend. */
  pathAndQuery: string;
  /** Raw header pairs (Host is set here). */
  headers: string[];
  /** A buffer, a stream (used once), or nothing. */
  body?: Buffer | Readable;
  /** Aborting it cancels the request: the gateway gave up on it (no fault of the backend's). */
  signal?: AbortSignal;
}

/** The gateway cancelled the request itself (e.g. the client's upload turned out malformed). */
export class RequestCancelledError extends Error {
  constructor(backend: string) {
    super(`the gateway cancelled its request to ${backend}`);
    this.name = 'RequestCancelledError';
  }
}

/** A bodyless request whose answer is either streamed into a writable or, if not taken, kept as a small body. */
export interface StreamedRequest {
  method: 'GET' | 'HEAD';
  pathAndQuery: string;
  headers: string[];
  /**
   * Called with the answer's head: returns where the body goes (it is written there unchanged and the writable
   * ended), or undefined to keep the body (up to 1 MiB) in the result instead.
   */
  take(status: number, rawHeaders: string[]): Writable | undefined;
}

export interface StreamedAnswer {
  status: number;
  rawHeaders: string[];
  /** The body, when `take` did not take it. */
  body?: Buffer;
}

/** The keep-alive connections kept per backend for reads (undici pool); measured by `npm run bench`. */
export const READ_CONNECTIONS_PER_BACKEND = 64;
const SMALL_BODY_LIMIT_BYTES = 1024 * 1024;

/**
 * Requests to backends over keep-alive connections; responses come back as streams, never buffered. Each exchange
 * has an idle timeout (request and response) and a deadline for the whole of it, so a client that reads an answer
 * slowly (or not at all) holds a pooled socket for a bounded time only.
 */
export function createBackendHttp(options: {
  idleTimeoutMs: number;
  /** The whole exchange, request body and response body included; past it the exchange is cut. */
  responseDeadlineMs?: number;
  /** Called when a deadline cut an exchange (for the limits metric). */
  onDeadline?: () => void;
}) {
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });
  // Reads use undici's stream API: the body goes from the parser straight into the client's response, with no
  // IncomingMessage stream in between (the largest cost of a relayed download after the two socket writes).
  const readAgent = new UndiciAgent({
    connections: READ_CONNECTIONS_PER_BACKEND,
    headersTimeout: options.idleTimeoutMs,
    bodyTimeout: options.idleTimeoutMs,
  });

  /** A GET or HEAD whose answer streams into `take`'s writable; transport failures before the head are typed. */
  async function streamRead(backend: Backend, req: StreamedRequest): Promise<StreamedAnswer> {
    const target = backendTarget(backend, req.pathAndQuery);
    // The same whole-exchange deadline as request(): a client that never reads cannot hold a pooled connection.
    const deadlineMs = options.responseDeadlineMs;
    const cut = deadlineMs === undefined ? undefined : new AbortController();
    const deadline =
      cut &&
      setTimeout(() => {
        options.onDeadline?.();
        cut.abort(new Error(`the exchange took longer than its ${deadlineMs} ms deadline`));
      }, deadlineMs);
    let head: { status: number; rawHeaders: string[] } | undefined;
    let kept: Buffer[] | undefined;
    let keptBytes = 0;
    try {
      await readAgent.stream(
        {
          origin: `${target.https ? 'https' : 'http'}://${target.host}`,
          path: target.path,
          method: req.method,
          ...(cut ? { signal: cut.signal } : {}),
          headers: req.headers,
          responseHeaders: 'raw',
        },
        ({ statusCode, headers }) => {
          const rawHeaders = headers as unknown as string[];
          head = { status: statusCode, rawHeaders };
          const target = req.take(statusCode, rawHeaders);
          if (target) return target;
          const chunks: Buffer[] = [];
          kept = chunks;
          return new Writable({
            write(chunk: Buffer, _encoding, done) {
              keptBytes += chunk.length;
              if (keptBytes > SMALL_BODY_LIMIT_BYTES)
                done(new Error(`answer larger than ${SMALL_BODY_LIMIT_BYTES} bytes`));
              else {
                chunks.push(chunk);
                done();
              }
            },
          });
        },
      );
    } catch (err) {
      if (!head) throw new BackendTransportError(backend.name, err);
      if (!kept) throw err; // the body broke while streaming: the taker's writable is destroyed already
      kept = []; // a broken small body reads as empty, as readSmallBody's callers treat it
    } finally {
      clearTimeout(deadline);
    }
    if (!head) throw new BackendTransportError(backend.name, new Error('no answer'));
    return { ...head, ...(kept ? { body: Buffer.concat(kept) } : {}) };
  }

  function request(backend: Backend, req: BackendRequest): Promise<IncomingMessage> {
    const target = backendTarget(backend, req.pathAndQuery);
    const { https } = target;
    const headers = ['Host', target.host, ...req.headers];
    // Raw header lists get no automatic framing: a body without a length would bleed into the next request.
    if (
      Buffer.isBuffer(req.body) &&
      !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-length')
    ) {
      headers.push('Content-Length', String(req.body.length));
    }
    return new Promise((resolve, reject) => {
      const upstream = (https ? httpsRequest : httpRequest)({
        hostname: target.hostname,
        port: target.port,
        path: target.path,
        method: req.method,
        // A raw header list disables Node's automatic Host header; the backend needs its own.
        headers,
        agent: https ? httpsAgent : httpAgent,
      });
      // Idle: a 1 GiB upload may take minutes, but a socket silent this long (either way) is dead or unread.
      upstream.setTimeout(options.idleTimeoutMs, () =>
        upstream.destroy(new Error(`no traffic for ${options.idleTimeoutMs} ms`)),
      );
      const deadlineMs = options.responseDeadlineMs;
      const deadline =
        deadlineMs === undefined
          ? undefined
          : setTimeout(() => {
              options.onDeadline?.();
              upstream.destroy(new Error(`the exchange took longer than its ${deadlineMs} ms deadline`));
            }, deadlineMs);
      upstream.once('close', () => clearTimeout(deadline));
      upstream.once('response', (response) => {
        response.once('end', () => clearTimeout(deadline));
        response.once('close', () => clearTimeout(deadline));
        resolve(response);
      });
      upstream.once('error', (err) =>
        reject(
          req.signal?.aborted
            ? new RequestCancelledError(backend.name)
            : new BackendTransportError(backend.name, err),
        ),
      );
      req.signal?.addEventListener('abort', () => upstream.destroy(new RequestCancelledError(backend.name)), {
        once: true,
      });
      if (req.body instanceof Readable) {
        req.body.once('error', (err) => upstream.destroy(err));
        req.body.pipe(upstream);
      } else {
        upstream.end(req.body);
      }
    });
  }

  return {
    request,
    streamRead,
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
      void readAgent.destroy();
    },
  };
}

export type BackendHttp = ReturnType<typeof createBackendHttp>;

/** Reads a small answer body (error messages, JSON), refusing more than limitBytes. */
export async function readSmallBody(response: IncomingMessage, limitBytes = 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response) {
    size += (chunk as Buffer).length;
    if (size > limitBytes) {
      response.destroy();
      throw new Error(`answer larger than ${limitBytes} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/**
 * Relays a backend answer as sent: status, headers (exact Content-Type, X-File-Mode, Last-Modified), body stream.
 * Returns the body bytes relayed.
 */
export async function relayResponse(
  upstream: IncomingMessage,
  res: ServerResponse,
  body?: Buffer,
): Promise<number> {
  res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, forwardableHeaders(upstream.rawHeaders));
  if (body !== undefined) {
    res.end(body);
    return body.length;
  }
  let bytes = 0;
  upstream.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  await pipeline(upstream, res);
  return bytes;
}

/** Relays an answer whose body was kept (a 404, an error): status and headers as sent, then the body. */
export function relayAnswer(answer: StreamedAnswer, res: ServerResponse): void {
  res.writeHead(answer.status, forwardableHeaders(answer.rawHeaders));
  res.end(answer.body ?? Buffer.alloc(0));
}

/** The Content-Length of a raw header list, 0 when absent or malformed. */
export function contentLength(rawHeaders: readonly string[]): number {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    if ((rawHeaders[i] as string).toLowerCase() === 'content-length') return Number(rawHeaders[i + 1]) || 0;
  }
  return 0;
}
