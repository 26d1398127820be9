import {
  Agent as HttpAgent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';
import type { Backend } from '@cring/charm';

// Hop-by-hop headers (RFC 9110 §7.6.1) are not forwarded; the length framing is re-derived per hop.
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

export function forwardableHeaders(rawHeaders: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const name = rawHeaders[i] as string;
    if (!HOP_BY_HOP.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1] as string);
  }
  return out;
}

export class BackendUnreachableError extends Error {
  readonly backend: string;
  constructor(backend: string, cause: unknown) {
    super(`backend ${backend} is unreachable (${(cause as Error).message})`, { cause });
    this.name = 'BackendUnreachableError';
    this.backend = backend;
  }
}

/** Streams requests to backends over keep-alive connections and streams the answers back untouched. */
export function createBackendProxy() {
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 256 });
  const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 256 });

  /**
   * Sends `req` (method, headers, body) to `backend` at `pathAndQuery` and relays the response to `res` with its
   * status and headers as sent (exact Content-Type, X-File-Mode, Last-Modified; no Content-Length if it had none).
   * Rejects with BackendUnreachableError when no response head arrived.
   */
  async function forward(req: IncomingMessage, res: ServerResponse, backend: Backend, pathAndQuery: string) {
    const url = new URL(pathAndQuery, backend.httpUrl);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const upstreamResponse = await new Promise<IncomingMessage>((resolve, reject) => {
      const upstream = send(url, {
        method: req.method,
        // A raw header list disables Node's automatic Host header; the backend needs its own.
        headers: ['Host', url.host, ...forwardableHeaders(req.rawHeaders)],
        agent: url.protocol === 'https:' ? httpsAgent : httpAgent,
      });
      upstream.once('response', resolve);
      upstream.once('error', (err) => reject(new BackendUnreachableError(backend.name, err)));
      req.pipe(upstream);
    });
    res.writeHead(
      upstreamResponse.statusCode ?? 502,
      upstreamResponse.statusMessage,
      forwardableHeaders(upstreamResponse.rawHeaders),
    );
    await pipeline(upstreamResponse, res);
  }

  return {
    forward,
    close() {
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

export type BackendProxy = ReturnType<typeof createBackendProxy>;
