import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { rawRequest, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';

/** Every route the gateway serves (and one it does not know), with the methods it takes. */
const ROUTES: { method: string; path: string; upload?: boolean; json?: string }[] = [
  { method: 'GET', path: '/v1/fs/a.txt' },
  { method: 'HEAD', path: '/v1/fs/a.txt' },
  { method: 'POST', path: '/v1/fs/a.txt?mode=420', upload: true },
  { method: 'DELETE', path: '/v1/fs/a.txt' },
  { method: 'GET', path: '/v1/seq/counter' },
  { method: 'POST', path: '/v1/seq/counter' },
  { method: 'POST', path: '/v1/encrypt-key', json: '{"id":"k","key":"k","public_key":"p"}' },
  { method: 'POST', path: '/v1/bio', json: '{"name":"eve"}' },
  { method: 'GET', path: '/v1/id/self' },
  { method: 'GET', path: '/v1/bio/eve' },
  { method: 'GET', path: '/v1/news' },
  { method: 'GET', path: '/v1/news/1' },
  { method: 'GET', path: '/v1/public/jwks' },
  { method: 'GET', path: '/.well-known/openid-configuration' },
  { method: 'GET', path: '/v1/not-a-route' },
  { method: 'OPTIONS', path: '/v1/id/self' },
];

describe('the gateway as an edge', () => {
  it('absolute-form, "//host", authority-form and "*" targets are refused on every route; nothing is forwarded', async (t) => {
    const cluster = await useCluster(t);
    // Stands in for an internal service the gateway's network can reach (the admin port, cloud metadata, …).
    const received: string[] = [];
    const internal = createServer((req, res) => {
      received.push(`${req.method} ${req.url} authorization=${req.headers.authorization ? 'yes' : 'no'}`);
      res.end('{"secret":"internal"}');
    });
    await new Promise<void>((resolve) => internal.listen(0, '127.0.0.1', resolve));
    t.after(() => internal.close());
    const internalHost = `127.0.0.1:${(internal.address() as AddressInfo).port}`;
    const deadHost = '127.0.0.1:1'; // a transport error there must not count against a backend

    const { charmId } = await newUser(cluster, 'eve');
    const auth: [string, string] = ['Authorization', `bearer ${tokens(cluster).valid(charmId)}`];
    const file = uploadBody(Buffer.from('payload\n'));
    const port = cluster.gatewayPorts.httpPort;
    const answers: { what: string; isHead: boolean; status: number; head: string; body: string }[] = [];
    for (const route of ROUTES) {
      for (const target of [
        `http://${internalHost}${route.path}`,
        `HTTP://${internalHost}${route.path}`,
        `//${internalHost}${route.path}`,
        `http://${deadHost}${route.path}`,
        `//${deadHost}${route.path}`,
      ]) {
        const headers: [string, string][] = [auth];
        let body: Buffer | undefined;
        if (route.upload) {
          headers.push(['Content-Type', file.contentType]);
          body = file.body;
        } else if (route.json) {
          headers.push(['Content-Type', 'application/json']);
          body = Buffer.from(route.json);
        }
        answers.push({
          what: `${route.method} ${target}`,
          isHead: route.method === 'HEAD',
          ...(await rawRequest(port, { method: route.method, target, headers, body })),
        });
      }
    }
    // First what matters most: nothing reached the internal service, with or without the user's token.
    assert.deepEqual(received, [], 'the internal service received nothing');
    for (const answer of answers) {
      assert.equal(answer.status, 400, `${answer.what}: ${answer.head}\n${answer.body}`);
      if (!answer.isHead) assert.match(answer.body, /is not a path/, answer.what);
    }
    for (const method of ['OPTIONS', 'GET']) {
      const answer = await rawRequest(port, { method, target: '*', headers: [auth] });
      assert.equal(answer.status, 400, `${method} *`);
      assert.match(answer.body, /is not a path/);
    }
    const connect = await rawRequest(port, { method: 'CONNECT', target: internalHost, headers: [auth] });
    assert.equal(connect.status, 400, `CONNECT ${internalHost}: ${connect.head}`);
    assert.match(connect.body, /not a proxy/);

    assert.deepEqual(received, [], 'the internal service still received nothing');
    const admin = `http://127.0.0.1:${cluster.gatewayPorts.adminPort}`;
    const status = (await (await fetch(`${admin}/status`)).json()) as {
      backends: { name: string; http: boolean }[];
    };
    assert.deepEqual(
      status.backends.filter((b) => !b.http).map((b) => b.name),
      [],
      'no backend was marked unhealthy',
    );
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    assert.doesNotMatch(metrics, /cring_backend_requests_total\{[^}]*outcome="transport"/);
    assert.equal(answers.length, ROUTES.length * 5);
  });

  it("limits: a stalled upload is the client's 408, a full spool a 503 with Retry-After, slow heads and surplus connections are cut", async (t) => {
    const cluster = await useCluster(t, {
      appEnv: {
        CRING_UPLOAD_STALL_TIMEOUT_MS: '1500',
        CRING_BACKEND_TIMEOUT_MS: '5000',
        CRING_HTTP_HEADERS_TIMEOUT_MS: '1000',
        CRING_HTTP_MAX_CONNECTIONS: '40',
        CRING_SSH_MAX_CONNECTIONS: '5',
        CRING_MAX_UPLOAD_BYTES: String(1024 * 1024),
        CRING_SPOOL_BUDGET_BYTES: String(1024 * 1024),
        CRING_SPOOL_BUDGET_WAIT_MS: '500',
      },
    });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'trickler');
    const auth: [string, string] = ['Authorization', `bearer ${tokens(cluster).valid(charmId)}`];
    const port = cluster.gatewayPorts.httpPort;
    const admin = `http://127.0.0.1:${cluster.gatewayPorts.adminPort}`;
    const trips = async (limit: string) =>
      Number(
        new RegExp(`cring_limit_trips_total\\{limit="${limit}"[^}]*\\} (\\d+)`).exec(
          await (await fetch(`${admin}/metrics`)).text(),
        )?.[1] ?? 0,
      );
    const unhealthy = async () =>
      (
        (await (await fetch(`${admin}/status`)).json()) as { backends: { name: string; http: boolean }[] }
      ).backends
        .filter((b) => !b.http)
        .map((b) => b.name);
    const upload = (size: number) => uploadBody(randomBytes(size));

    // 1. A client that stops sending mid-upload: 408, its fault; no backend blamed; the path lock is released.
    const stalled = upload(300_000);
    const stall = await rawRequest(port, {
      method: 'POST',
      target: '/v1/fs/stalled.bin?mode=420',
      headers: [auth, ['Content-Type', stalled.contentType]],
      body: stalled.body,
      trickle: { bytes: 50_000, everyMs: 10, stopAfterBytes: 100_000 },
    });
    assert.equal(stall.status, 408, `${stall.head}\n${stall.body}`);
    assert.match(stall.body, /sent no data for 1500 ms/);
    assert.deepEqual(await unhealthy(), [], 'the stall counted against no backend');
    assert.equal(await trips('upload_stall'), 1);
    // A complete multipart body that declares 10 bytes more: the gateway waits for them (and fails the upload
    // as stalled), so no backend may have stored it meanwhile (a charm server answers once it saw the boundary).
    const short = upload(200_000);
    const lying = await rawRequest(port, {
      method: 'POST',
      target: '/v1/fs/declared-more.bin?mode=420',
      headers: [auth, ['Content-Type', short.contentType]],
      body: short.body,
      contentLength: short.body.length + 10,
    });
    assert.equal(lying.status, 408, `${lying.head}\n${lying.body}`);
    assert.ok(
      cluster.backends.every((_, i) => !filesOnBackend(cluster, i, charmId).has('/declared-more.bin')),
      'no backend stored the refused upload',
    );
    const retry = upload(1000);
    const stored = await rawRequest(port, {
      method: 'POST',
      target: '/v1/fs/stalled.bin?mode=420',
      headers: [auth, ['Content-Type', retry.contentType]],
      body: retry.body,
    });
    assert.equal(stored.status, 200, 'the same path takes a new upload at once: its lock was released');
    await state.waitForDrain(charmId);

    // 2. The spool budget (1 MiB) is held by one slow upload: another waits 500 ms, then gets 503 Retry-After.
    const big = upload(900_000);
    const holding = rawRequest(port, {
      method: 'POST',
      target: '/v1/fs/big.bin?mode=420',
      headers: [auth, ['Content-Type', big.contentType]],
      body: big.body,
      trickle: { bytes: 100_000, everyMs: 300 },
    });
    const small = upload(200_000);
    const refused = await rawRequest(port, {
      method: 'POST',
      target: '/v1/fs/small.bin?mode=420',
      headers: [auth, ['Content-Type', small.contentType]],
      body: small.body,
    });
    assert.equal(refused.status, 503, `${refused.head}\n${refused.body}`);
    assert.match(refused.head, /retry-after: 1/i);
    assert.match(refused.body, /spool budget.*nothing was changed/);
    assert.equal((await holding).status, 200, 'the upload holding the budget completes');
    assert.equal(await trips('spool_budget'), 1);
    assert.ok(
      cluster.backends.every((_, i) => !filesOnBackend(cluster, i, charmId).has('/small.bin')),
      'the refused upload reached no backend',
    );
    assert.deepEqual(await state.manifest.entry(charmId, '/small.bin'), undefined);

    // 3. A request head trickling in past the headers timeout is answered 408 and closed.
    const slowHead = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write('GET /v1/id/self HTTP/1.1\r\nHost: x\r\n'),
      );
      const drip = setInterval(() => socket.write('X-Slow: 1\r\n'), 200);
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.on('error', () => {});
      socket.on('close', () => {
        clearInterval(drip);
        resolve(text);
      });
    });
    assert.match(slowHead, /^HTTP\/1\.1 408/);
    assert.match(slowHead, /did not arrive in time/);

    // 4. Past 40 connections a new one is answered 503 before any request is read; capacity comes back.
    const held = await Promise.all(
      Array.from(
        { length: 40 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(port, '127.0.0.1', () => resolve(socket));
            socket.on('error', () => {});
          }),
      ),
    );
    const surplus = await rawRequest(port, { method: 'GET', target: '/v1/id/self', headers: [auth] });
    assert.equal(surplus.status, 503);
    assert.match(surplus.body, /at its limit of 40 connections/);
    for (const socket of held) socket.destroy();
    for (const deadline = Date.now() + 10_000; ; ) {
      const answer = await rawRequest(port, { method: 'GET', target: '/v1/id/self', headers: [auth] });
      if (answer.status === 200) break;
      assert.ok(Date.now() < deadline, `capacity never came back: ${answer.head}`);
    }
    assert.ok((await trips('http_connections')) >= 1);

    // 5. SSH: past 5 connections a new one is told why and closed; it never reaches a backend.
    const sshPort = cluster.gatewayPorts.sshPort;
    const sshHeld = await Promise.all(
      Array.from(
        { length: 5 },
        () =>
          new Promise<Socket>((resolve) => {
            const socket = connect(sshPort, '127.0.0.1');
            socket.on('error', () => {});
            socket.once('data', () => resolve(socket)); // the backend's SSH banner: relayed
          }),
      ),
    );
    const sshRefusal = await new Promise<string>((resolve) => {
      const socket = connect(sshPort, '127.0.0.1');
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      socket.on('error', () => {});
      socket.on('close', () => resolve(text));
    });
    assert.match(sshRefusal, /at its limit of 5 SSH connections/);
    assert.doesNotMatch(sshRefusal, /^SSH-2\.0/, 'no backend banner: it was not relayed');
    for (const socket of sshHeld) socket.destroy();
    assert.equal(await trips('ssh_connections'), 1);
  });

  it('odd but valid input gets the answer a backend gives: bad seq escapes, raw UTF-8 paths; encoded parts and transfer codings are refused', async (t) => {
    const cluster = await useCluster(t);
    const { charmId } = await newUser(cluster, 'ursula');
    const auth: [string, string] = ['Authorization', `bearer ${tokens(cluster).valid(charmId)}`];
    const gateway = cluster.gatewayPorts.httpPort;
    const direct = cluster.backends[0]?.info.httpPort as number;

    // A malformed %-escape in a seq name is the client's 400, as on the server, however the target is written
    // (an absolute-form target reached the seq handler, which decoded the wrong slice of it: a 500).
    const badSeqDirect = await rawRequest(direct, { method: 'GET', target: '/v1/seq/%zz', headers: [auth] });
    assert.equal(badSeqDirect.status, 400, 'the backend calls it a bad request');
    for (const target of ['/v1/seq/%zz', 'http://gateway.example%zz/v1/seq/counter', '/v1/seq/a%2']) {
      const badSeq = await rawRequest(gateway, { method: 'GET', target, headers: [auth] });
      assert.equal(badSeq.status, 400, `${target}: ${badSeq.head}\n${badSeq.body}`);
    }

    // A path sent as raw UTF-8 bytes: a backend takes it, so the gateway does too, under the same name.
    const name = Buffer.from('/v1/fs/caf\u00e9-\u6587.txt?mode=420', 'utf8');
    const bytes = Buffer.from('raw utf-8 path\n');
    const body = uploadBody(bytes);
    const upload = (port: number, target: Buffer) =>
      rawRequest(port, {
        method: 'POST',
        target,
        headers: [auth, ['Content-Type', body.contentType]],
        body: body.body,
      });
    const directAnswer = await upload(direct, Buffer.from('/v1/fs/direct-caf\u00e9.txt?mode=420', 'utf8'));
    assert.equal(directAnswer.status, 200, 'a backend accepts a raw UTF-8 path');
    const viaGateway = await upload(gateway, name);
    assert.equal(viaGateway.status, 200, `${viaGateway.head}\n${viaGateway.body}`);
    const read = await fetch(`http://127.0.0.1:${gateway}/v1/fs/caf%C3%A9-%E6%96%87.txt`, {
      headers: { authorization: auth[1] },
    });
    assert.equal(read.status, 200);
    assert.equal(await read.text(), bytes.toString());

    // A part with a Content-Transfer-Encoding: Go may decode it, so what is stored would not be what was hashed.
    const boundary = 'xYzBoundary';
    const encoded = Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="data"; filename="e.txt"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\na=3Db\r\n--${boundary}--\r\n`,
    );
    const refused = await rawRequest(gateway, {
      method: 'POST',
      target: '/v1/fs/encoded.txt?mode=420',
      headers: [auth, ['Content-Type', `multipart/form-data; boundary=${boundary}`]],
      body: encoded,
    });
    assert.equal(refused.status, 400);
    assert.match(refused.body, /Content-Transfer-Encoding/);
    const notThere = await fetch(`http://127.0.0.1:${gateway}/v1/fs/encoded.txt`, {
      headers: { authorization: auth[1] },
    });
    assert.equal(notThere.status, 404);

    // A transfer coding other than chunked alone: Node would take "gzip, chunked" as chunked and pass on bytes
    // still gzip-coded; a backend answers 501, and so does the gateway, storing nothing.
    const chunked = (bytes: Buffer) =>
      Buffer.from(`${bytes.length.toString(16)}\r\n${bytes.toString('latin1')}\r\n0\r\n\r\n`, 'latin1');
    for (const codings of [['gzip, chunked'], ['qSvg8', 'chunked']]) {
      const send = (port: number, target: string) =>
        rawRequest(port, {
          method: 'POST',
          target,
          headers: [
            auth,
            ['Content-Type', body.contentType],
            ...codings.map((coding): [string, string] => ['Transfer-Encoding', coding]),
          ],
          body: chunked(body.body),
          contentLength: null,
        });
      const fromBackend = await send(direct, '/v1/fs/coded-direct.txt?mode=420');
      const fromGateway = await send(gateway, '/v1/fs/coded.txt?mode=420');
      assert.equal(fromBackend.status, 501, `a backend refuses ${codings.join(' + ')}`);
      assert.equal(
        fromGateway.status,
        501,
        `${codings.join(' + ')}: ${fromGateway.head}\n${fromGateway.body}`,
      );
      assert.match(fromGateway.body, /Transfer-Encoding .* is not supported/);
      const stored = await fetch(`http://127.0.0.1:${gateway}/v1/fs/coded.txt`, {
        headers: { authorization: auth[1] },
      });
      assert.equal(stored.status, 404);
    }
  });
});
