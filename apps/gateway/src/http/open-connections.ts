import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** What Node says of one client connection: enough to tell an answer never sent from a connection never closed. */
export interface ConnectionState {
  remotePort: number | undefined;
  openForMs: number;
  destroyed: boolean;
  readyState: string;
  writableEnded: boolean;
  writableFinished: boolean;
  writableLength: number;
  errored: boolean;
  readableFlowing: boolean | null;
  /** The socket's idle timeout now (0: none). */
  timeoutMs: number | undefined;
  bytesRead: number;
  bytesWritten: number;
  /** The answer in flight on it, if any. */
  response?: { statusCode: number; headersSent: boolean; writableEnded: boolean; writableFinished: boolean };
}

/**
 * Tracks the HTTP server's client connections, for the admin port's /connections: the ones open longer than a
 * given time, oldest first, each as Node sees it.
 */
export function trackOpenConnections(server: Server): (olderThanMs: number) => ConnectionState[] {
  const openedAt = new Map<Socket, number>();
  server.on('connection', (socket: Socket) => {
    openedAt.set(socket, Date.now());
    socket.once('close', () => openedAt.delete(socket));
  });
  return (olderThanMs) => {
    const now = Date.now();
    return [...openedAt]
      .filter(([, at]) => now - at >= olderThanMs)
      .sort(([, a], [, b]) => a - b)
      .map(([socket, at]) => describe(socket, now - at));
  };
}

function describe(socket: Socket, openForMs: number): ConnectionState {
  // Node keeps the answer in flight on the socket (over TLS, on the TLS socket: none is shown then).
  const response = (socket as Socket & { _httpMessage?: ServerResponse })._httpMessage;
  return {
    remotePort: socket.remotePort,
    openForMs,
    destroyed: socket.destroyed,
    readyState: socket.readyState,
    writableEnded: socket.writableEnded,
    writableFinished: socket.writableFinished,
    writableLength: socket.writableLength,
    errored: Boolean(socket.errored),
    readableFlowing: socket.readableFlowing,
    timeoutMs: socket.timeout,
    bytesRead: socket.bytesRead,
    bytesWritten: socket.bytesWritten,
    ...(response && {
      response: {
        statusCode: response.statusCode,
        headersSent: response.headersSent,
        writableEnded: response.writableEnded,
        writableFinished: response.writableFinished,
      },
    }),
  };
}
