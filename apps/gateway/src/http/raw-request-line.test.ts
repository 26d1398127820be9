import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { escapeRawRequestTargets, escapeRequestLine } from './raw-request-line.ts';

async function listening(): Promise<{ server: Server; port: number }> {
  const server = createServer((request, response) => response.end(request.url));
  escapeRawRequestTargets(server, { tls: false, timeoutMs: 60_000 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

const connected = async (port: number): Promise<Socket> => {
  const socket = connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
};

/** Resolves when the socket has closed, or rejects after `ms`. */
function socketClosedWithin(socket: Socket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server kept the connection open for ${ms} ms after the client's FIN`));
    }, ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Resolves when the server has closed, or rejects after `ms` (a connection kept it open). */
function closedWithin(server: Server, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server still had a connection after ${ms} ms`)), ms);
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

test('a raw UTF-8 target is percent-encoded, the rest of the request left as it is', () => {
  const out = escapeRequestLine(Buffer.from('GET /v1/fs/é HTTP/1.1\r\nHost: x\r\n\r\n'));
  assert.equal(out.toString('latin1'), 'GET /v1/fs/%C3%A9 HTTP/1.1\r\nHost: x\r\n\r\n');
});

test('a client that half-closes before its request line is let go: the socket closes and so can the server', async () => {
  const { server, port } = await listening();
  const socket = await connected(port);
  socket.end(); // a readiness probe, a scanner: FIN, no bytes
  socket.resume();
  await socketClosedWithin(socket, 5_000);
  // Before: the socket sat in CLOSE-WAIT on the server (handed to HTTP after its 'end'), and close() waited on it
  // until the process was killed (a gateway's SIGTERM never completed).
  await closedWithin(server, 5_000);
});

test('a request sent whole before the FIN is still answered', async () => {
  const { server, port } = await listening();
  const socket = await connected(port);
  socket.end('GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  await socketClosedWithin(socket, 5_000);
  assert.match(answer, /^HTTP\/1\.1 200 OK/);
  assert.match(answer, /\/ok$/);
  await closedWithin(server, 5_000);
});

test('a connection still sending its first line does not hold the server open when it closes', async () => {
  const { server, port } = await listening();
  const socket = await connected(port);
  socket.write('GET /slow'); // no end of line: the socket is not HTTP's yet
  socket.resume();
  socket.on('error', () => {}); // dropped with its bytes unread: the client may see a reset
  await new Promise<void>((resolve) => setImmediate(resolve));
  await closedWithin(server, 5_000);
  await socketClosedWithin(socket, 5_000);
});
