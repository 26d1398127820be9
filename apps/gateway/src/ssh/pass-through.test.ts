import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { createLogger } from '@cring/service-runtime';
import { createSshPassThrough } from './pass-through.ts';

const logger = createLogger({ name: 'test', level: 'silent', pretty: false });

async function listen(server: Server): Promise<number> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as { port: number }).port;
}

const backendAt = (name: string, port: number): Backend => ({
  name,
  httpUrl: `http://127.0.0.1:${port}`,
  sshHost: '127.0.0.1',
  sshPort: port,
});

/** A backend whose port refuses connections (a server that listened once and is gone). */
async function refusingBackend(name: string): Promise<Backend> {
  const server = createServer();
  const port = await listen(server);
  await new Promise((resolve) => server.close(resolve));
  return backendAt(name, port);
}

/** A backend that accepts and echoes, remembering its connections. */
async function echoBackend(name: string) {
  const connections = new Set<Socket>();
  const server = createServer((socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const port = await listen(server);
  return {
    backend: backendAt(name, port),
    connections,
    close: () => {
      for (const socket of connections) socket.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

function connectClient(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  return once(socket, 'connect').then(() => socket);
}

function readExactly(socket: Socket, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let received = '';
    const onData = (chunk: Buffer) => {
      received += chunk.toString('utf8');
      if (received.length >= bytes) {
        socket.off('data', onData);
        resolve(received);
      }
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error(`closed after ${received.length} bytes`)));
  });
}

/** The first candidate whose connect has not failed yet (what a fixed preference order would do). */
const inOrder = (candidates: readonly Backend[]) => (failed: readonly Backend[]) =>
  candidates.find((b) => !failed.includes(b));

describe('SSH pass-through', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it("relays a client's bytes to the second candidate when the first refuses", async () => {
    const refusing = await refusingBackend('down');
    const echo = await echoBackend('up');
    cleanups.push(echo.close);
    const failures: [string, string | undefined][] = [];
    const ssh = createSshPassThrough({
      logger,
      selectBackend: inOrder([refusing, echo.backend]),
      onBackendFailure: (backend, err) => failures.push([backend.name, (err as NodeJS.ErrnoException).code]),
    });
    cleanups.push(ssh.close);
    const port = await ssh.listen(0, '127.0.0.1');

    const client = await connectClient(port);
    // Written before any upstream exists: the paused client keeps it in the kernel until one is connected.
    client.write('SSH-2.0-test\r\n');
    assert.equal(await readExactly(client, 14), 'SSH-2.0-test\r\n');
    assert.deepEqual(failures, [['down', 'ECONNREFUSED']]);
    assert.equal(echo.connections.size, 1);

    client.end();
    await once(client, 'close');
  });

  it('turns a connection past the cap away with a line saying why, and admits again once one closes', async () => {
    const echo = await echoBackend('up');
    cleanups.push(echo.close);
    let refused = 0;
    const ssh = createSshPassThrough({
      logger,
      selectBackend: inOrder([echo.backend]),
      maxConnections: 2,
      onRefused: () => refused++,
    });
    cleanups.push(ssh.close);
    const port = await ssh.listen(0, '127.0.0.1');
    const admitted = [await connectClient(port), await connectClient(port)];
    for (const client of admitted) {
      client.write('ping\r\n');
      assert.equal(await readExactly(client, 6), 'ping\r\n');
    }
    const third = await connectClient(port);
    let said = '';
    third.on('data', (chunk: Buffer) => (said += chunk.toString('utf8')));
    await once(third, 'end');
    assert.match(said, /at its limit of 2 SSH connections/);
    assert.equal(refused, 1);
    assert.equal(echo.connections.size, 2, 'the refused client never reached a backend');
    third.destroy();

    const [first] = admitted as [Socket, Socket];
    first.destroy();
    await once(first, 'close');
    // The server sees the close a moment after the client: wait for it, with a deadline.
    const count = () => new Promise<number>((resolve) => ssh.server.getConnections((_, n) => resolve(n)));
    for (const deadline = Date.now() + 5000; (await count()) > 1; ) {
      assert.ok(Date.now() < deadline, 'the closed connection was never released');
      await new Promise((resolve) => setImmediate(resolve));
    }
    const fourth = await connectClient(port);
    fourth.write('again\r\n');
    assert.equal(await readExactly(fourth, 7), 'again\r\n');
    for (const client of [...admitted, fourth]) client.destroy();
  });

  it('closes the client cleanly (a FIN, no reset) when every candidate fails', async () => {
    const candidates = [await refusingBackend('a'), await refusingBackend('b')];
    const failures: string[] = [];
    const ssh = createSshPassThrough({
      logger,
      selectBackend: inOrder(candidates),
      onBackendFailure: (backend) => failures.push(backend.name),
    });
    cleanups.push(ssh.close);
    const port = await ssh.listen(0, '127.0.0.1');

    const client = await connectClient(port);
    const errors: Error[] = [];
    client.on('error', (err) => errors.push(err));
    client.write('SSH-2.0-test\r\n');
    const ended = once(client, 'end');
    client.resume();
    await ended;
    client.end();
    const [hadError] = (await once(client, 'close')) as [boolean];
    assert.equal(hadError, false);
    assert.deepEqual(errors, []);
    assert.deepEqual(failures, ['a', 'b']);
  });

  it('closes the client when there is no candidate at all', async () => {
    const ssh = createSshPassThrough({ logger, selectBackend: inOrder([]) });
    cleanups.push(ssh.close);
    const port = await ssh.listen(0, '127.0.0.1');
    const client = await connectClient(port);
    client.resume();
    await once(client, 'end');
    client.end();
    await once(client, 'close');
  });

  it('asks for candidates per connection, so a new connection follows the current order', async () => {
    const first = await echoBackend('first');
    const second = await echoBackend('second');
    cleanups.push(first.close, second.close);
    let order = [first.backend, second.backend];
    const ssh = createSshPassThrough({ logger, selectBackend: (failed) => inOrder(order)(failed) });
    cleanups.push(ssh.close);
    const port = await ssh.listen(0, '127.0.0.1');

    const a = await connectClient(port);
    a.write('a');
    assert.equal(await readExactly(a, 1), 'a');
    order = [second.backend, first.backend];
    const b = await connectClient(port);
    b.write('b');
    assert.equal(await readExactly(b, 1), 'b');
    assert.equal(first.connections.size, 1);
    assert.equal(second.connections.size, 1);
    a.destroy();
    b.destroy();
  });

  it('close() ends open sessions, stops listening, and is safe to call twice', async () => {
    const echo = await echoBackend('up');
    cleanups.push(echo.close);
    const ssh = createSshPassThrough({ logger, selectBackend: inOrder([echo.backend]) });
    const port = await ssh.listen(0, '127.0.0.1');
    const client = await connectClient(port);
    client.on('error', () => {});
    client.write('x');
    await readExactly(client, 1);

    const closed = once(client, 'close');
    await Promise.all([ssh.close(), ssh.close()]);
    await ssh.close();
    await closed;
    assert.equal(ssh.server.listening, false);
    for (let i = 0; i < 50 && echo.connections.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(echo.connections.size, 0, 'the upstream side was closed too');
    await assert.rejects(connectClient(port), { code: 'ECONNREFUSED' });
  });

  it('close() before listen resolves', async () => {
    const ssh = createSshPassThrough({ logger, selectBackend: inOrder([]) });
    await ssh.close();
    await ssh.close();
  });
});
