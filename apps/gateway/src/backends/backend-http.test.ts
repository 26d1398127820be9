import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createBackendHttp, readSmallBody, relaySized } from './backend-http.ts';

describe('backend requests', () => {
  const seen: { method: string; url: string; body: string; socket: unknown }[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    seen.push({
      method: req.method ?? '',
      url: req.url ?? '',
      body: Buffer.concat(chunks).toString(),
      socket: req.socket,
    });
    res.writeHead(200, { 'content-type': 'application/json', 'x-file-mode': '420' });
    res.end('{"ok":true}\n');
  });
  const http = createBackendHttp({ idleTimeoutMs: 5000 });
  let backend: { name: string; httpUrl: string; sshHost: string; sshPort: number };
  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    backend = {
      name: 'b',
      httpUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      sshHost: '127.0.0.1',
      sshPort: 1,
    };
  });
  after(() => {
    http.close();
    server.close();
  });

  it('frames a GET body so the next request on the same connection is intact', async () => {
    // The charm client sends `null` with GET /v1/seq; unframed, it bled into the next request ("nullGET …").
    const first = await http.request(backend, {
      method: 'GET',
      pathAndQuery: '/v1/seq/a',
      headers: [],
      body: Buffer.from('null'),
    });
    await readSmallBody(first);
    const second = await http.request(backend, { method: 'GET', pathAndQuery: '/v1/seq/b', headers: [] });
    assert.equal(second.statusCode, 200);
    assert.equal(second.headers['x-file-mode'], '420');
    await readSmallBody(second);
    assert.deepEqual(
      seen.map(({ method, url, body }) => ({ method, url, body })),
      [
        { method: 'GET', url: '/v1/seq/a', body: 'null' },
        { method: 'GET', url: '/v1/seq/b', body: '' },
      ],
    );
    assert.equal(seen[0]?.socket, seen[1]?.socket, 'the keep-alive connection was reused');
  });

  it('reports a refused connection as a transport error naming the backend', async () => {
    const dead = { ...backend, name: 'dead', httpUrl: 'http://127.0.0.1:1' };
    await assert.rejects(http.request(dead, { method: 'GET', pathAndQuery: '/', headers: [] }), {
      name: 'BackendTransportError',
      message: 'ECONNREFUSED',
    });
  });

  it('cuts an answer whose body stops coming (idle) and one that trickles past the deadline', async () => {
    const stalling = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write('first bytes');
      if (req.url === '/trickle') {
        const timer = setInterval(() => res.write('.'), 20);
        res.once('close', () => clearInterval(timer));
      } // '/silent': nothing more, the connection stays open
    });
    await new Promise<void>((resolve) => stalling.listen(0, '127.0.0.1', resolve));
    let deadlines = 0;
    const limited = createBackendHttp({
      // Far apart, so a loaded machine's scheduling delays cannot make the trickle look idle.
      idleTimeoutMs: 1000,
      responseDeadlineMs: 3000,
      onDeadline: () => deadlines++,
    });
    const target = {
      ...backend,
      httpUrl: `http://127.0.0.1:${(stalling.address() as AddressInfo).port}`,
    };
    try {
      for (const path of ['/silent', '/trickle']) {
        const response = await limited.request(target, { method: 'GET', pathAndQuery: path, headers: [] });
        await assert.rejects(readSmallBody(response), `${path}: the body is cut, not left open`);
      }
      assert.equal(deadlines, 1, 'only the trickle ran into the deadline; the silent one was idle');
    } finally {
      limited.close();
      stalling.closeAllConnections();
      stalling.close();
    }
  });
});

describe('relaying a file of known size', () => {
  /** A backend that answers every GET with `bytes` chunked (no Content-Length), as charm serve does above 2 KB. */
  const answerWith = { bytes: Buffer.alloc(0) };
  const backendServer = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-file-mode': '420' });
    const { bytes } = answerWith;
    const half = Math.floor(bytes.length / 2);
    res.write(bytes.subarray(0, half));
    setImmediate(() => res.end(bytes.subarray(half)));
  });
  /** The gateway side: relays the backend's answer with relaySized, as the read route does for `size`. */
  const relayed = { size: 0 };
  const http = createBackendHttp({ idleTimeoutMs: 5000 });
  const gatewayServer = createServer(async (_req, res) => {
    const upstream = await http.request(backend, { method: 'GET', pathAndQuery: '/f', headers: [] });
    await relaySized(upstream, res, relayed.size);
  });
  let backend: { name: string; httpUrl: string; sshHost: string; sshPort: number };
  let gatewayUrl: string;
  before(async () => {
    await new Promise<void>((resolve) => backendServer.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => gatewayServer.listen(0, '127.0.0.1', resolve));
    backend = {
      name: 'b',
      httpUrl: `http://127.0.0.1:${(backendServer.address() as AddressInfo).port}`,
      sshHost: '127.0.0.1',
      sshPort: 1,
    };
    gatewayUrl = `http://127.0.0.1:${(gatewayServer.address() as AddressInfo).port}/f`;
  });
  after(() => {
    http.close();
    backendServer.close();
    gatewayServer.closeAllConnections();
    gatewayServer.close();
  });

  it('relays the bytes with the known Content-Length and the backend headers', async () => {
    answerWith.bytes = Buffer.from('x'.repeat(100_000));
    relayed.size = 100_000;
    const answer = await fetch(gatewayUrl);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-length'), '100000');
    assert.equal(answer.headers.get('transfer-encoding'), null);
    assert.equal(answer.headers.get('x-file-mode'), '420');
    assert.ok(Buffer.from(await answer.arrayBuffer()).equals(answerWith.bytes));
  });

  it('cuts the answer when the backend sends fewer bytes than the manifest names', async () => {
    answerWith.bytes = Buffer.from('y'.repeat(60_000));
    relayed.size = 100_000;
    const answer = await fetch(gatewayUrl);
    await assert.rejects(answer.arrayBuffer());
  });

  it('cuts the answer before the excess when the backend sends more', async () => {
    answerWith.bytes = Buffer.from('z'.repeat(150_000));
    relayed.size = 100_000;
    const answer = await fetch(gatewayUrl);
    await assert.rejects(answer.arrayBuffer());
  });
});
