import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { rawRequest, tokens, uploadBody } from '../harness/raw-http.ts';

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
});
