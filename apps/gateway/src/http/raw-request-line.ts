import type { Server } from 'node:http';
import type { Socket } from 'node:net';

const MAX_REQUEST_LINE_BYTES = 16 * 1024;

/**
 * Node's HTTP parser refuses bytes above 0x7F in a request target (400 before any route), where Go's server (the
 * backends) takes raw UTF-8 and stores the path percent-encoded. So the first request line of each connection is
 * read here and such bytes are percent-encoded (`é` → `%C3%A9`), which is how the backend names the file anyway.
 * Later requests on a kept-alive connection are not rewritten; Node answers those 400 (the clientError handler
 * says to percent-encode). Stock charm clients always percent-encode.
 */
export function escapeRawRequestTargets(server: Server, options: { tls: boolean; timeoutMs: number }): void {
  const event = options.tls ? 'secureConnection' : 'connection';
  const handlers = server.listeners(event) as ((socket: Socket) => void)[];
  server.removeAllListeners(event);
  // Sockets whose first line is still awaited are not HTTP's yet, so server.close() would wait for them (up to
  // the headers timeout each): they are dropped when the server closes.
  const awaitingLine = new Set<Socket>();
  server.on(event, (socket: Socket) => {
    awaitingLine.add(socket);
    socket.once('close', () => awaitingLine.delete(socket));
    readFirstLine(socket, options.timeoutMs, () => {
      awaitingLine.delete(socket);
      for (const handler of handlers) handler.call(server, socket);
      socket.resume(); // paused while the line was held; HTTP reads the put-back bytes first
    });
  });
  const close = server.close.bind(server);
  server.close = (callback?: (err?: Error) => void) => {
    for (const socket of awaitingLine) socket.destroy();
    return close(callback);
  };
}

/** Holds the socket's bytes until the first line is complete, puts them back escaped, then calls `next`. */
function readFirstLine(socket: Socket, timeoutMs: number, next: () => void): void {
  let held: Buffer = Buffer.alloc(0);
  let done = false;
  const finish = () => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    socket.off('data', onData).off('end', endedEarly).off('close', endedEarly);
    socket.pause();
    if (held.length > 0) socket.unshift(escapeRequestLine(held));
    next();
  };
  const onData = (chunk: Buffer) => {
    held = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    if (held.includes(0x0a) || held.length >= MAX_REQUEST_LINE_BYTES) finish();
  };
  // A client that sends no line at all meets the headers timeout once HTTP has the socket.
  const timer = setTimeout(finish, timeoutMs);
  // A client gone before its first line ends sent no request: HTTP would get the socket after its 'end' and
  // never see one, so the socket would stay half-open forever (and hold server.close(), a SIGTERM, with it).
  const endedEarly = () => {
    done = true;
    clearTimeout(timer);
    socket.destroy();
  };
  socket.on('data', onData).once('end', endedEarly).once('close', endedEarly);
}

/** The bytes with every byte above 0x7F in the first line's request target percent-encoded. */
export function escapeRequestLine(bytes: Buffer): Buffer {
  const lineEnd = bytes.indexOf(0x0a);
  const line = lineEnd < 0 ? bytes : bytes.subarray(0, lineEnd);
  const targetStart = line.indexOf(0x20) + 1;
  const targetEnd = line.lastIndexOf(0x20);
  if (targetStart <= 0 || targetEnd <= targetStart) return bytes;
  const target = line.subarray(targetStart, targetEnd);
  if (!target.some((byte) => byte > 0x7f)) return bytes;
  let escaped = '';
  for (const byte of target)
    escaped +=
      byte > 0x7f ? `%${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  return Buffer.concat([
    bytes.subarray(0, targetStart),
    Buffer.from(escaped, 'latin1'),
    bytes.subarray(targetEnd),
  ]);
}
