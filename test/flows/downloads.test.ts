// Downloads through the gateway's read pool (apps/gateway/src/backends/socket-reads.ts) against real charm servers:
// whole and exact bodies over kept-alive connections, HEAD, 404, and a client that leaves mid-download, which must
// not leave a backend connection open or in the pool.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { Agent, type IncomingMessage, request } from 'node:http';
import { describe, it } from 'node:test';
import type { Cluster } from '@cring/local-cluster';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState } from '../harness/replicas.ts';

/** The gateway's read pool per backend, from its metrics: connections opened so far, in use, idle. */
async function readPool(
  cluster: Cluster,
): Promise<Map<string, { opened: number; active: number; idle: number }>> {
  const text = await (await fetch(`http://127.0.0.1:${cluster.gatewayPorts.adminPort}/metrics`)).text();
  const pool = new Map<string, { opened: number; active: number; idle: number }>();
  const entry = (backend: string) => {
    const found = pool.get(backend) ?? { opened: 0, active: 0, idle: 0 };
    pool.set(backend, found);
    return found;
  };
  for (const [, backend, state, value] of text.matchAll(
    /^cring_backend_read_connections\{backend="([^"]+)",state="(active|idle)"[^}]*\} (\d+)/gm,
  ))
    entry(backend as string)[state as 'active' | 'idle'] = Number(value);
  for (const [, backend, value] of text.matchAll(
    /^cring_backend_read_connections_opened_total\{backend="([^"]+)"[^}]*\} (\d+)/gm,
  ))
    entry(backend as string).opened = Number(value);
  return pool;
}

const sum = (pool: Map<string, { opened: number; active: number; idle: number }>, key: 'opened' | 'active') =>
  [...pool.values()].reduce((total, entry) => total + entry[key], 0);

describe('downloads through the read pool', () => {
  it('exact bodies over kept-alive connections; a client that leaves mid-download leaks no backend connection', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'downloads');
    const token = tokens(cluster).valid(charmId);
    // Larger than the kernel buffers between backend, gateway and client hold: the download is mid-way when cut.
    const bytes = randomBytes(48 * 1024 * 1024);
    const { body, contentType } = uploadBody(bytes);
    const put = await fetch(gatewayUrl(cluster, '/v1/fs/big.bin?mode=420'), {
      method: 'POST',
      headers: { authorization: `bearer ${token}`, 'content-type': contentType },
      body,
    });
    assert.equal(put.status, 200);
    await state.waitForDrain(charmId);

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const get = (path: string, method = 'GET') =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const req = request(gatewayUrl(cluster, path), {
          method,
          agent,
          headers: { authorization: `bearer ${token}` },
        });
        req.once('response', resolve);
        req.once('error', reject);
        req.end();
      });
    const download = async (path: string) => {
      const response = await get(path);
      const hash = createHash('sha256');
      for await (const chunk of response) hash.update(chunk as Buffer);
      return { response, sha256: hash.digest('hex') };
    };
    const expected = createHash('sha256').update(bytes).digest('hex');

    const first = await download('/v1/fs/big.bin');
    assert.equal(first.response.statusCode, 200);
    assert.equal(first.response.headers['content-length'], String(bytes.length));
    assert.equal(first.response.headers['x-file-mode'], '420');
    assert.equal(first.sha256, expected);
    const afterFirst = await readPool(cluster);
    for (let i = 0; i < 2; i++)
      assert.equal((await download('/v1/fs/big.bin')).sha256, expected, `download ${i + 2}`);
    const head = await get('/v1/fs/big.bin', 'HEAD');
    head.resume();
    await once(head, 'end');
    assert.equal(head.statusCode, 200);
    const missing = await download('/v1/fs/none.bin');
    assert.equal(missing.response.statusCode, 404);
    const afterMore = await readPool(cluster);
    assert.equal(
      sum(afterMore, 'opened'),
      sum(afterFirst, 'opened'),
      'later reads reused the kept-alive connection',
    );

    // A client that takes the head and a first piece of the body, then leaves.
    const leaving = request(gatewayUrl(cluster, '/v1/fs/big.bin'), {
      headers: { authorization: `bearer ${token}` },
    });
    leaving.end();
    const [partial] = (await once(leaving, 'response')) as [IncomingMessage];
    assert.equal(partial.statusCode, 200);
    await once(partial, 'data');
    partial.pause();
    leaving.destroy();
    // Well within the backend idle timeout (30 s), which would close a forgotten connection by itself.
    const deadline = Date.now() + 10_000;
    let pool = await readPool(cluster);
    while (sum(pool, 'active') > 0) {
      if (Date.now() > deadline)
        assert.fail(`a backend connection stayed in use: ${JSON.stringify([...pool])}`);
      await new Promise((resolve) => setTimeout(resolve, 50)); // polling the gauge for the event, with a deadline
      pool = await readPool(cluster);
    }
    for (const [backend, entry] of pool)
      assert.ok(entry.idle <= 1, `${backend}: the abandoned connection was not pooled (${entry.idle} idle)`);
    assert.equal((await download('/v1/fs/big.bin')).sha256, expected, 'the next download is whole');
  });
});
