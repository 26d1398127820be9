import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState } from '../harness/replicas.ts';

/** fetch refuses GET bodies, which the charm client sends: a raw request answered as a fetch Response. */
function rawRequest(
  url: string,
  init: { method: string; headers: Record<string, string>; body?: string },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers = {
      ...init.headers,
      ...(init.body === undefined ? {} : { 'content-length': String(Buffer.byteLength(init.body)) }),
    };
    const req = request(url, { method: init.method, headers }, async (res) => {
      const chunks: Buffer[] = [];
      for await (const chunk of res) chunks.push(chunk as Buffer);
      const headers = new Headers();
      for (const [name, value] of Object.entries(res.headers))
        if (typeof value === 'string') headers.set(name, value);
      resolve(
        new Response(init.method === 'HEAD' || res.statusCode === 204 ? null : Buffer.concat(chunks), {
          status: res.statusCode,
          headers,
        }),
      );
    });
    req.once('error', reject);
    req.end(init.body);
  });
}

const HTTP_DATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;

describe('response fidelity: the gateway answers like a charm server', () => {
  it('keeps statuses, exact Content-Type, X-File-Mode, Last-Modified and bodies', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'fidelity');
    const auth = { authorization: `bearer ${tokens(cluster).valid(charmId)}` };
    const { body, contentType } = uploadBody(Buffer.from('exact bytes\n'));
    const put = await fetch(gatewayUrl(cluster, '/v1/fs//docs/./a.txt?mode=384'), {
      method: 'POST',
      headers: { ...auth, 'content-type': contentType },
      body,
    });
    assert.equal(put.status, 200);
    assert.equal(await put.text(), '');
    await state.waitForDrain(charmId);

    const direct = (path: string) => `${cluster.backends[0]?.info.httpUrl}${path}`;
    const cases: { name: string; path: string; method?: string; body?: string; public?: boolean }[] = [
      { name: 'file', path: '/v1/fs/docs/a.txt' },
      { name: 'file with dot segments', path: '/v1/fs/docs/../docs/a.txt' },
      { name: 'HEAD file', path: '/v1/fs/docs/a.txt', method: 'HEAD' },
      { name: 'directory', path: '/v1/fs/docs' },
      { name: 'missing file', path: '/v1/fs/nope.txt' },
      { name: 'fs without slash', path: '/v1/fs' },
      { name: 'unknown route', path: '/v1/unknown' },
      { name: 'user with a GET body', path: '/v1/id/x', body: '{"name":""}' },
      { name: 'seq', path: '/v1/seq/counter' },
      { name: 'news', path: '/v1/news?page=1' },
      { name: 'jwks', path: '/v1/public/jwks', public: true },
      { name: 'openid configuration', path: '/.well-known/openid-configuration', public: true },
    ];
    for (const c of cases) {
      const init = {
        method: c.method ?? 'GET',
        headers: (c.public ? {} : auth) as Record<string, string>,
        body: c.body,
      };
      const [viaGateway, viaBackend] = await Promise.all([
        rawRequest(gatewayUrl(cluster, c.path), init),
        rawRequest(direct(c.path), init),
      ]);
      assert.equal(viaGateway.status, viaBackend.status, `${c.name}: status`);
      for (const header of ['content-type', 'x-file-mode', 'access-control-allow-origin']) {
        assert.equal(viaGateway.headers.get(header), viaBackend.headers.get(header), `${c.name}: ${header}`);
      }
      assert.equal(
        viaGateway.headers.has('last-modified'),
        viaBackend.headers.has('last-modified'),
        `${c.name}: last-modified`,
      );
      if (viaGateway.headers.has('last-modified'))
        assert.match(viaGateway.headers.get('last-modified') as string, HTTP_DATE);
      const [gatewayBody, backendBody] = await Promise.all([viaGateway.text(), viaBackend.text()]);
      if (c.name === 'directory') {
        // modtimes differ per backend; the shape and names must not.
        const strip = (text: string) =>
          JSON.parse(text, (key, value) => (key === 'modtime' ? undefined : value));
        assert.deepEqual(strip(gatewayBody), strip(backendBody), `${c.name}: body`);
      } else {
        assert.equal(gatewayBody, backendBody, `${c.name}: body`);
      }
    }
    const file = await fetch(gatewayUrl(cluster, '/v1/fs/docs/a.txt'), { headers: auth });
    assert.equal(file.headers.get('content-type'), 'application/octet-stream');
    assert.equal(file.headers.get('x-file-mode'), '384');
    assert.equal(await file.text(), 'exact bytes\n');
  });
});
