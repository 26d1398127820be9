import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { createBackendHttp } from '../backends/backend-http.ts';
import { createSocketReads } from '../backends/socket-reads.ts';
import type { GatewayServices } from '../http/services.ts';
import { ONE_BUFFER_BYTES, startStreamedUploads } from './streamed-uploads.ts';

describe('uploads forwarded while the body arrives', () => {
  const arrived: { url: string; body: Buffer }[] = [];
  const started: string[] = [];
  const server = createServer(async (req: IncomingMessage, res) => {
    started.push(req.url ?? '');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    arrived.push({ url: req.url ?? '', body: Buffer.concat(chunks) });
    const refuse = req.url?.includes('refuse');
    res.writeHead(refuse ? 500 : 200, { 'content-type': 'application/json' });
    res.end(refuse ? '{"message":"disk broke"}' : '{}');
  });
  const backendHttp = createBackendHttp({ idleTimeoutMs: 5000 });
  const socketReads = createSocketReads({ idleTimeoutMs: 5000, maxIdlePerBackend: 4, keepIdleMs: 30_000 });
  // Only what the upload path uses: the backend HTTP client and socket pool, and their metrics.
  const services = {
    backendHttp,
    socketReads,
    metrics: { backendRequests: { inc() {} }, backendSeconds: { observe() {} } },
    reportBackendFailure() {},
  } as unknown as GatewayServices;
  const backends: Backend[] = [];
  before(async () => {
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const httpUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    for (const name of ['a', 'b']) backends.push({ name, httpUrl, sshHost: '127.0.0.1', sshPort: 1 });
  });
  after(() => {
    backendHttp.close();
    socketReads.close();
    server.closeAllConnections();
    server.close();
  });
  const upload = (path: string, bytes: number) =>
    startStreamedUploads(services, backends, {
      pathAndQuery: path,
      headers: ['Content-Type', 'application/octet-stream', 'Content-Length', String(bytes)],
    });

  it('sends a small body to every backend only once it is complete, as one buffer', async () => {
    const { forwarder, outcomes } = upload('/small', 10);
    await forwarder.write(Buffer.from('hello'));
    await forwarder.write(Buffer.from(' you!'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(started, [], 'no backend hears of an incomplete small body');
    forwarder.end();
    const results = await outcomes();
    assert.deepEqual(
      results.map((r) => r.ok),
      [true, true],
    );
    assert.deepEqual(
      arrived.filter((a) => a.url === '/small').map((a) => a.body.toString()),
      ['hello you!', 'hello you!'],
    );
  });

  it('sends nothing anywhere when a small body is cancelled', async () => {
    const { forwarder, outcomes } = upload('/cancelled', 5);
    await forwarder.write(Buffer.from('hel'));
    forwarder.cancel();
    const results = await outcomes();
    assert.deepEqual(
      results.map((r) => [r.ok, r.reason]),
      [
        [false, 'never sent'],
        [false, 'never sent'],
      ],
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!started.includes('/cancelled'));
  });

  it('streams a large body: the backends receive it before it is complete', async () => {
    const bytes = 3 * ONE_BUFFER_BYTES;
    const { forwarder, outcomes } = upload('/large', bytes);
    const chunk = Buffer.alloc(ONE_BUFFER_BYTES, 7);
    await forwarder.write(chunk);
    await forwarder.write(chunk);
    const deadline = Date.now() + 5_000;
    while (started.filter((s) => s === '/large').length < 2 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal(started.filter((s) => s === '/large').length, 2, 'both uploads run before the body ends');
    await forwarder.write(chunk);
    forwarder.end();
    assert.ok((await outcomes()).every((r) => r.ok));
    for (const a of arrived.filter((x) => x.url === '/large')) {
      assert.equal(a.body.length, bytes);
      assert.ok(a.body.every((byte) => byte === 7));
    }
  });

  it("reports a backend's refusal as that backend's failed outcome", async () => {
    const { forwarder, outcomes } = upload('/refuse', 2);
    await forwarder.write(Buffer.from('hi'));
    forwarder.end();
    const results = await outcomes();
    assert.ok(results.every((r) => !r.ok && /answered 500 "disk broke"/.test(r.reason ?? '')));
  });
});
