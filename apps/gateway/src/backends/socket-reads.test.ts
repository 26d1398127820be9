import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { relayAnswer, relayAnswerSized } from './answer-relay.ts';
import { createSocketReads } from './socket-reads.ts';

const backendAt = (server: Server) => ({
  name: 'b',
  httpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
  sshHost: '127.0.0.1',
  sshPort: 1,
});

/** Waits for `check` to hold (event-driven state settling), failing after `ms`. */
async function eventually(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** `promise`, or a failure naming `what` after `ms`. */
async function within<T>(promise: Promise<T> | undefined, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`not within ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([promise as Promise<T>, expired]);
  } finally {
    clearTimeout(timer);
  }
}

describe('file reads over pooled sockets', () => {
  /** A backend like charm serve: bodies above 2 KB chunked (written in two pieces), small ones with a length. */
  const files = new Map<string, Buffer>();
  const sockets = new Set<Socket>();
  const open = new Set<Socket>();
  const backendServer = createServer((req, res) => {
    const bytes = files.get(req.url ?? '');
    if (!bytes) {
      res.writeHead(404, { 'Content-Type': 'application/json' });
      return void res.end('{"message":"file not found"}\n');
    }
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      'X-File-Mode': '420',
    };
    if (bytes.length <= 2048) headers['Content-Length'] = String(bytes.length);
    res.writeHead(200, headers);
    if (req.method === 'HEAD') return void res.end();
    const half = Math.floor(bytes.length / 2);
    res.write(bytes.subarray(0, half));
    setImmediate(() => res.end(bytes.subarray(half)));
  });
  backendServer.on('connection', (socket: Socket) => {
    sockets.add(socket);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  const reads = createSocketReads({ idleTimeoutMs: 5000, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  let backend: ReturnType<typeof backendAt>;
  before(async () => {
    backendServer.listen(0, '127.0.0.1');
    await once(backendServer, 'listening');
    backend = backendAt(backendServer as unknown as Server);
  });
  after(() => {
    reads.close();
    backendServer.closeAllConnections();
    backendServer.close();
  });
  beforeEach(() => sockets.clear());

  it('reads chunked and sized bodies, HEAD and 404 answers, over one kept-alive connection', async () => {
    const big = Buffer.alloc(300_000, 'b');
    files.set('/v1/fs/big', big);
    files.set('/v1/fs/small', Buffer.from('small'));
    const get = (path: string, method: 'GET' | 'HEAD' = 'GET') =>
      reads.request(backend, { method, pathAndQuery: path, headers: ['Authorization', 'bearer x'] });
    const first = await get('/v1/fs/big');
    assert.equal(first.statusCode, 200);
    assert.equal(first.headers['x-file-mode'], '420');
    assert.equal(first.headers['transfer-encoding'], 'chunked');
    assert.ok((await first.read()).equals(big));
    assert.equal((await (await get('/v1/fs/small')).readExactly(5))?.toString(), 'small');
    const head = await get('/v1/fs/small', 'HEAD');
    assert.equal(head.headers['content-length'], '5');
    assert.equal((await head.read()).length, 0, 'a HEAD answer has no body, whatever its length says');
    const missing = await get('/v1/fs/none');
    assert.equal(missing.statusCode, 404);
    assert.equal((await missing.read()).toString(), '{"message":"file not found"}\n');
    assert.equal(sockets.size, 1, 'one connection for the exchanges in a row');
    assert.equal(await (await get('/v1/fs/big')).readExactly(299_999), undefined, 'another size is refused');
    assert.equal((await (await get('/v1/fs/small')).read()).toString(), 'small');
    assert.equal(sockets.size, 2, "the refused answer's connection was closed, not reused");
  });

  it('asks again on a new connection when the server closed a kept-alive one', async () => {
    files.set('/v1/fs/f', Buffer.from('abc'));
    const get = () => reads.request(backend, { method: 'GET', pathAndQuery: '/v1/fs/f', headers: [] });
    await (await get()).read();
    for (const socket of open) socket.destroy(); // the server drops its idle connections
    await eventually(() => (reads.stats()[backend.name]?.idle ?? 0) === 0, 'the pool noticed the close');
    assert.equal((await (await get()).read()).toString(), 'abc');
  });

  it('refuses targets and header values that would change the request line or add headers', async () => {
    await assert.rejects(reads.request(backend, { method: 'GET', pathAndQuery: '/v1/fs/a b', headers: [] }));
    await assert.rejects(
      reads.request(backend, { method: 'GET', pathAndQuery: '/v1/fs/a', headers: ['X', 'a\r\nHost: evil'] }),
    );
  });
});

describe('answers that break their framing', () => {
  /** A raw backend: each connection gets `reply` written as it is (and closed when `close` says so). */
  const script = { reply: Buffer.alloc(0), close: false };
  const server = createTcpServer((socket) => {
    socket.once('data', () => {
      socket.write(script.reply);
      if (script.close) socket.end();
    });
    socket.on('error', () => {});
  });
  // Idle timeouts far above a loaded machine's scheduling delays, but for the pool whose timeout is under test.
  const reads = createSocketReads({ idleTimeoutMs: 10_000, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  const impatient = createSocketReads({ idleTimeoutMs: 300, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  let backend: ReturnType<typeof backendAt>;
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    backend = backendAt(server);
  });
  after(() => {
    reads.close();
    impatient.close();
    server.close();
  });
  const get = (pool = reads) =>
    pool.request(backend, { method: 'GET', pathAndQuery: '/v1/fs/f', headers: [] });

  it('a body cut short, a lying chunk size, or garbage: the read fails, the connection is not reused', async () => {
    for (const [reply, close] of [
      ['HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc', true],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nff\r\nabc', true],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX', false],
    ] as const) {
      script.reply = Buffer.from(reply);
      script.close = close;
      await assert.rejects((await get()).read(), reply);
    }
    script.reply = Buffer.from('SSH-2.0-not-http\r\n\r\n');
    await assert.rejects(get(), { name: 'BackendTransportError' });
    await eventually(
      () => Object.values(reads.stats()).every((s) => s.active === 0 && s.idle === 0),
      'no connection kept',
    );
  });

  it('an empty body framed by Content-Length 0 completes with the head, and the connection is reused', async () => {
    script.reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    script.close = false;
    assert.equal((await within((await get()).read(), 'the empty body')).length, 0);
    await eventually(() => reads.stats()[backend.name]?.idle === 1, 'its connection pooled again');
  });

  it('an answer that stops coming is cut by the idle timeout', async () => {
    script.reply = Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc');
    script.close = false;
    await assert.rejects((await get(impatient)).read(), /no traffic for 300 ms/);
  });
});

describe('relaying an answer to the client', () => {
  const answerWith = { bytes: Buffer.alloc(0), stall: false };
  const backendClosed: Promise<void>[] = [];
  const backendServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-file-mode': '420' });
    backendClosed.push(once(res, 'close').then(() => {}));
    const { bytes, stall } = answerWith;
    res.write(bytes.subarray(0, 65_536));
    if (!stall) setImmediate(() => res.end(bytes.subarray(65_536)));
  });
  const reads = createSocketReads({ idleTimeoutMs: 5000, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  const relayed = { size: 0 as number | undefined, done: [] as Promise<number>[] };
  const gatewayServer = createServer(async (_req: IncomingMessage, res: ServerResponse) => {
    const answer = await reads.request(backend, { method: 'GET', pathAndQuery: '/f', headers: [] });
    const done =
      relayed.size === undefined ? relayAnswer(answer, res) : relayAnswerSized(answer, res, relayed.size);
    relayed.done.push(done);
  });
  let backend: ReturnType<typeof backendAt>;
  let gatewayUrl: string;
  before(async () => {
    backendServer.listen(0, '127.0.0.1');
    gatewayServer.listen(0, '127.0.0.1');
    await Promise.all([once(backendServer, 'listening'), once(gatewayServer, 'listening')]);
    backend = backendAt(backendServer as unknown as Server);
    gatewayUrl = `http://127.0.0.1:${(gatewayServer.address() as AddressInfo).port}/f`;
  });
  after(() => {
    reads.close();
    backendServer.closeAllConnections();
    backendServer.close();
    gatewayServer.closeAllConnections();
    gatewayServer.close();
  });
  beforeEach(() => {
    answerWith.stall = false;
  });

  it('relays the bytes with the known Content-Length and the backend headers', async () => {
    answerWith.bytes = Buffer.alloc(1024 * 1024, 'x');
    relayed.size = answerWith.bytes.length;
    const answer = await fetch(gatewayUrl);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-length'), String(answerWith.bytes.length));
    assert.equal(answer.headers.get('transfer-encoding'), null);
    assert.equal(answer.headers.get('x-file-mode'), '420');
    assert.ok(Buffer.from(await answer.arrayBuffer()).equals(answerWith.bytes));
    assert.equal(await relayed.done.at(-1), answerWith.bytes.length);
  });

  it('relays an answer of unknown size as it comes (re-framed for the client)', async () => {
    answerWith.bytes = Buffer.alloc(100_000, 'u');
    relayed.size = undefined;
    const answer = await fetch(gatewayUrl);
    assert.equal(answer.headers.get('x-file-mode'), '420');
    assert.ok(Buffer.from(await answer.arrayBuffer()).equals(answerWith.bytes));
  });

  it('cuts the answer when the backend sends fewer bytes than the manifest names, or more', async () => {
    for (const [length, size] of [
      [90_000, 100_000],
      [150_000, 100_000],
    ] as const) {
      answerWith.bytes = Buffer.alloc(length, 'y');
      relayed.size = size;
      const answer = await fetch(gatewayUrl);
      await assert.rejects(answer.arrayBuffer(), `${length} bytes for a ${size}-byte file`);
      assert.ok(((await relayed.done.at(-1)) ?? 0) <= size, 'never more than the size went out');
    }
  });

  it('a client that leaves mid-download closes the backend connection (none is leaked or pooled)', async () => {
    answerWith.bytes = Buffer.alloc(4 * 1024 * 1024, 'z');
    answerWith.stall = true; // the backend sends 64 KiB, then waits: the download is mid-way
    relayed.size = answerWith.bytes.length;
    const before = backendClosed.length;
    const client = httpRequest(gatewayUrl);
    client.end();
    const [response] = (await once(client, 'response')) as [IncomingMessage];
    await once(response, 'data');
    client.destroy();
    await eventually(() => backendClosed.length > before, 'the backend saw the request');
    // The backend's response closed: its connection was dropped (it never ends the stalled answer itself).
    await within(backendClosed.at(-1), 'the backend connection closed');
    await relayed.done.at(-1);
    const stats = Object.values(reads.stats());
    assert.ok(
      stats.every((s) => s.active === 0 && s.idle <= 1),
      `no exchange left open: ${JSON.stringify(stats)}`,
    );
  });
});

/** A pool against `server` for one describe block: listening before its tests, all closed after them. */
function poolAgainst(server: ReturnType<typeof createServer>) {
  const connections = new Set<Socket>();
  server.on('connection', (socket: Socket) => connections.add(socket));
  const pool = createSocketReads({ idleTimeoutMs: 5000, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  let backend: ReturnType<typeof backendAt> | undefined;
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    backend = backendAt(server as unknown as Server);
  });
  after(() => {
    pool.close();
    server.closeAllConnections();
    server.close();
  });
  /** The backend, once listening. */
  const at = () => backend as ReturnType<typeof backendAt>;
  return { pool, connections, at };
}

describe('whole-body POSTs over pooled sockets', () => {
  /** Echoes the body's length and first bytes; `/v1/fs/hold` never answers (a backend still at work). */
  const received: Buffer[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    received.push(Buffer.concat(chunks));
    if (req.url === '/v1/fs/hold') return;
    if (req.url === '/v1/fs/refuse') {
      res.writeHead(507, { 'Content-Type': 'application/json' });
      return void res.end('{"message":"no room"}\n');
    }
    res.writeHead(200);
    res.end(`${req.method} ${req.headers['content-length']} ${Buffer.concat(chunks).toString()}`);
  });
  const { pool, connections, at } = poolAgainst(server);
  const post = (path: string, body: Buffer, headers: string[] = [], signal?: AbortSignal) =>
    pool.request(at(), { method: 'POST', pathAndQuery: path, headers, body, signal });

  it('sends the body with its length and reads the answer, reusing one connection', async () => {
    const first = await post('/v1/fs/a', Buffer.from('first body'));
    assert.equal(first.statusCode, 200);
    assert.equal((await first.read()).toString(), 'POST 10 first body');
    const second = await post('/v1/fs/b', Buffer.from('second'), ['Content-Length', '6']);
    assert.equal((await second.read()).toString(), 'POST 6 second');
    const refused = await post('/v1/fs/refuse', Buffer.from('x'));
    assert.equal(refused.statusCode, 507);
    assert.equal((await refused.read()).toString(), '{"message":"no room"}\n');
    assert.equal(connections.size, 1, 'one kept-alive connection for the three exchanges');
  });

  it('refuses a Content-Length other than the body length before anything is sent', async () => {
    const before = received.length;
    await assert.rejects(
      post('/v1/fs/c', Buffer.from('abc'), ['Content-Length', '4']),
      /not the body's 3 bytes/,
    );
    assert.equal(received.length, before, 'nothing reached the backend');
  });

  it('an aborted exchange rejects with RequestCancelledError and its connection is closed', async () => {
    const cancel = new AbortController();
    const before = received.length;
    const answer = post('/v1/fs/hold', Buffer.from('held'), [], cancel.signal);
    await eventually(() => received.length > before, 'the backend got the body');
    cancel.abort();
    await assert.rejects(answer, { name: 'RequestCancelledError' });
    await eventually(() => [...connections].every((s) => s.destroyed), 'its connection closed, none pooled');
    await eventually(
      () => Object.values(pool.stats()).every((s) => s.active === 0),
      'no exchange left active',
    );
    await assert.rejects(post('/v1/fs/d', Buffer.from('x'), [], cancel.signal), {
      name: 'RequestCancelledError',
    });
  });
});

describe('POSTs whose body streams over pooled sockets', () => {
  /** Reads the whole body and echoes its length, except `/v1/fs/early`: refused at once, body unread. */
  const bodies: { url: string; bytes: number; complete: boolean }[] = [];
  const server = createServer((req, res) => {
    if (req.url === '/v1/fs/early') {
      res.writeHead(413, { 'Content-Type': 'application/json' });
      return void res.end('{"message":"too large"}\n');
    }
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      bodies.push({ url: req.url ?? '', bytes, complete: true });
      res.writeHead(200);
      res.end(String(bytes));
    });
    req.on('aborted', () => bodies.push({ url: req.url ?? '', bytes, complete: false }));
  });
  const { pool, connections, at } = poolAgainst(server);
  const open = (path: string, length: number, signal?: AbortSignal) =>
    pool.stream(at(), {
      method: 'POST',
      pathAndQuery: path,
      headers: ['Content-Length', String(length)],
      signal,
    });
  /** Writes `count` chunks of `size` bytes, waiting for the connection when it asks. */
  const writeChunks = async (
    body: { write(b: Buffer): boolean; drained(): Promise<void> },
    count: number,
  ) => {
    for (let i = 0; i < count; i++) if (!body.write(Buffer.alloc(65_536, i))) await body.drained();
  };

  it('sends the head with the first bytes, the body as it comes, and reuses the connection after', async () => {
    const { answer, body } = open('/v1/fs/big', 16 * 65_536);
    await writeChunks(body, 16);
    body.end();
    const answered = await within(answer, 'the answer');
    assert.equal(answered.statusCode, 200);
    assert.equal((await answered.read()).toString(), String(16 * 65_536));
    const again = open('/v1/fs/small', 3);
    again.body.write(Buffer.from('abc'));
    again.body.end();
    assert.equal((await (await again.answer).read()).toString(), '3');
    assert.equal(connections.size, 1, 'one kept-alive connection for both');
  });

  it('an answer that comes before the body is complete closes the connection: it is never reused', async () => {
    const before = connections.size;
    const { answer, body } = open('/v1/fs/early', 1024 * 1024);
    body.write(Buffer.alloc(1000));
    const refused = await within(answer, 'the early answer');
    assert.equal(refused.statusCode, 413);
    assert.equal((await refused.read()).toString(), '{"message":"too large"}\n');
    await writeChunks(body, 2); // the caller may still write: the bytes go nowhere
    await eventually(
      () => Object.values(pool.stats()).every((s) => s.active === 0 && s.idle === 0),
      'the connection was closed, not pooled',
    );
    const next = open('/v1/fs/next', 2);
    next.body.write(Buffer.from('ok'));
    next.body.end();
    assert.equal((await (await next.answer).read()).toString(), '2');
    assert.ok(connections.size > before, 'the next request went on a new connection');
  });

  it('a cancelled upload is cut mid-body: the backend never sees it complete', async () => {
    const cancel = new AbortController();
    const { answer, body } = open('/v1/fs/cut', 4 * 65_536, cancel.signal);
    await writeChunks(body, 2);
    cancel.abort();
    await assert.rejects(answer, { name: 'RequestCancelledError' });
    await eventually(() => bodies.some((b) => b.url === '/v1/fs/cut'), 'the backend saw the request end');
    assert.deepEqual(
      bodies.filter((b) => b.url === '/v1/fs/cut').map((b) => b.complete),
      [false],
    );
  });

  it('a body that ends short of its Content-Length, or runs past it, fails at once instead of hanging', async () => {
    const short = open('/v1/fs/short', 10);
    short.body.write(Buffer.from('abc'));
    short.body.end();
    await assert.rejects(within(short.answer, 'the short body fails'), /ended after 3 of its 10 bytes/);
    const long = open('/v1/fs/long', 2);
    long.body.write(Buffer.from('abc'));
    await assert.rejects(
      within(long.answer, 'the long body fails'),
      /more body bytes than its Content-Length/,
    );
    await eventually(
      () => Object.values(pool.stats()).every((s) => s.active === 0),
      'no exchange left active',
    );
  });

  it('refuses a streamed body without a Content-Length', () => {
    assert.throws(
      () => pool.stream(at(), { method: 'POST', pathAndQuery: '/v1/fs/x', headers: [] }),
      /needs its Content-Length/,
    );
  });
});
