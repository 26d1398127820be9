import type { IncomingMessage, ServerResponse } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '@cring/charm';
import { backendTarget } from './backend-url.ts';

// node:http via getBuiltinModule, not an ESM import: importing it loads Node's bundled undici (the lazy WebSocket
// exports), ~12 MiB RSS that nothing here uses (nodejs/node#59686; apps/gateway/README.md, Memory).
const { Agent: HttpAgent, request: httpRequest } = process.getBuiltinModule('node:http');

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
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
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

/** The head of a backend's answer, as relayed: IncomingMessage and BackendAnswer (socket-reads.ts) both have it. */
export interface AnswerHeadFields {
  statusCode?: number;
  statusMessage?: string;
  rawHeaders: readonly string[];
}

/** Head of a relayed 200 whose length is known: the backend's headers, its framing replaced by Content-Length. */
export function sizedHead(upstream: AnswerHeadFields, res: ServerResponse, size: number): void {
  res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, [
    ...forwardableHeaders(upstream.rawHeaders, ['content-length']),
    'Content-Length',
    String(size),
  ]);
}

/** Relays an answer whose body was read whole (readExactly): head and body leave in one write. */
export function relayWhole(upstream: AnswerHeadFields, res: ServerResponse, body: Buffer): void {
  sizedHead(upstream, res, body.length);
  res.end(body);
}

/**
 * Relays a 200 whose size the manifest knows: the client gets that Content-Length (nothing to re-frame: the
 * backend's chunks are written as they come, no copies), and a backend that sends more or fewer bytes has the
 * client's connection cut before the answer completes, so a wrong copy is never taken for a complete one.
 * Resolves once the client's response is closed (finished or cut), with the body bytes written to it.
 */
export function relaySized(upstream: IncomingMessage, res: ServerResponse, size: number): Promise<number> {
  sizedHead(upstream, res, size);
  return new Promise((resolve) => {
    let sent = 0;
    const cut = () => {
      upstream.destroy();
      res.destroy();
    };
    upstream.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (sent > size) return cut();
      if (!res.write(chunk)) upstream.pause();
    });
    res.on('drain', () => upstream.resume());
    upstream.once('end', () => (sent === size ? res.end() : cut()));
    upstream.once('close', () => {
      if (!upstream.complete) cut(); // the backend's answer broke (reset, deadline)
    });
    res.once('close', () => {
      if (!upstream.complete) upstream.destroy(); // the client left
      resolve(Math.min(sent, size));
    });
  });
}
