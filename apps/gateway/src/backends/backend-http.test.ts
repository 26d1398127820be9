import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { createBackendHttp, readSmallBody } from './backend-http.ts';

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
      idleTimeoutMs: 200,
      responseDeadlineMs: 600,
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
