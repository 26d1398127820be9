import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayConfig } from '../config.ts';
import type { GatewayMetrics } from '../metrics.ts';

type Limits = GatewayConfig['limits'];

/** How often Node checks every connection against the header and request timeouts. */
const TIMEOUT_CHECK_INTERVAL_MS = 1_000;

/** Node HTTP server options for the timeouts Node enforces itself (head and whole request). */
export function serverTimeoutOptions(limits: Limits) {
  return {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: TIMEOUT_CHECK_INTERVAL_MS,
  };
}

/** A complete HTTP/1.1 answer in the charm client's `{"message": …}` shape, for sockets no route owns. */
export function rawAnswer(status: number, reason: string, message: string, extraHeaders = ''): string {
  const body = `${JSON.stringify({ message })}\n`;
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}Connection: close\r\n\r\n${body}`;
}

/**
 * The limits that act on connections rather than requests: the connection cap (past it a new connection gets a
 * 503 and is closed before any request is parsed), the idle timeout, and clear answers (with a metric) for
 * requests Node's parser refuses or times out.
 */
export function applyConnectionLimits(
  server: Server,
  limits: Limits,
  metrics: GatewayMetrics,
  options: { tls: boolean },
): { clientError: (err: NodeJS.ErrnoException, socket: Duplex) => void } {
  let open = 0;
  // The listener that hands a new TCP connection to HTTP (or to TLS first) runs only for admitted ones.
  const admit = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    if (open >= limits.httpMaxConnections) {
      metrics.limitTrips.inc({ limit: 'http_connections' });
      socket.on('error', () => {});
      // Before TLS there is no way to send a readable answer: the connection is closed.
      if (options.tls) socket.destroy();
      else
        socket.end(
          rawAnswer(
            503,
            'Service Unavailable',
            `the gateway is at its limit of ${limits.httpMaxConnections} connections; retry shortly`,
            'Retry-After: 1\r\n',
          ),
        );
      return;
    }
    open++;
    socket.once('close', () => open--);
    for (const listener of admit) listener.call(server, socket);
  });

  // No traffic either way for idleTimeoutMs: a client that stopped reading or sending. Node only emits this.
  server.setTimeout(limits.idleTimeoutMs);
  server.on('timeout', (socket: Socket) => {
    metrics.limitTrips.inc({ limit: 'http_idle_timeout' });
    socket.destroy();
  });

  return {
    clientError(err, socket) {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      let answer: string;
      if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
        metrics.limitTrips.inc({ limit: 'http_request_timeout' });
        answer = rawAnswer(
          408,
          'Request Timeout',
          `the request did not arrive in time (head within ${limits.headersTimeoutMs} ms, whole request within ${limits.requestTimeoutMs} ms)`,
        );
      } else if (err.code === 'HPE_HEADER_OVERFLOW') {
        answer = rawAnswer(431, 'Request Header Fields Too Large', 'the request head is too large');
      } else if (err.code === 'HPE_INVALID_URL') {
        answer = rawAnswer(400, 'Bad Request', 'the request target has a character that must be %-escaped');
      } else {
        answer = rawAnswer(400, 'Bad Request', `malformed HTTP request (${err.code ?? 'parse error'})`);
      }
      socket.end(answer);
    },
  };
}

/** CONNECT (authority-form targets) never reaches a route; without this Node drops the socket unanswered. */
export function refuseConnect(server: Server, metrics: GatewayMetrics): void {
  server.on('connect', (request: IncomingMessage, socket: Duplex) => {
    metrics.requests.inc({ route: 'unmatched', method: request.method ?? 'CONNECT', status: 400 });
    socket.on('error', () => {});
    socket.end(rawAnswer(400, 'Bad Request', 'CONNECT is not accepted: this is not a proxy'));
  });
}
