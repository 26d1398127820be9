import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { singleFileMultipart } from '@cring/charm';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';

/** Sends a raw request body in pieces; `stopAfter` bytes then drops the connection, like a client that died. */
function rawUpload(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
  stopAfter?: number,
): Promise<{ status: number; body: string } | 'dropped'> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers }, (res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', (err) => (stopAfter !== undefined ? resolve('dropped') : reject(err)));
    if (stopAfter === undefined) return void req.end(body);
    req.write(body.subarray(0, stopAfter), () =>
      setTimeout(() => {
        req.destroy();
        resolve('dropped');
      }, 300),
    );
  });
}

describe('bad input changes nothing', () => {
  it('malformed, truncated, oversize and nonsense uploads are refused and every backend keeps its bytes', async (t) => {
    const cluster = await useCluster(t, { appEnv: { CRING_MAX_UPLOAD_BYTES: String(1024 * 1024) } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'mallory');
    const auth = { authorization: `bearer ${tokens(cluster).valid(charmId)}` };
    const url = gatewayUrl(cluster, '/v1/fs/kept.bin?mode=420');
    const original = randomBytes(200_000);
    const good = uploadBody(original);
    const stored = await rawUpload(
      url,
      { ...auth, 'content-type': good.contentType, 'content-length': String(good.body.length) },
      good.body,
    );
    assert.ok(stored !== 'dropped' && stored.status === 200, 'the original upload is stored');
    await state.waitForDrain(charmId);
    const before = cluster.backends.map((_, i) => filesOnBackend(cluster, i, charmId));
    const manifestBefore = await state.manifest.entry(charmId, '/kept.bin');

    const { head, tail, contentType } = singleFileMultipart({ filename: '/kept.bin' });
    const boundary = contentType.split('boundary=')[1] as string;
    const replacement = randomBytes(150_000);
    const twoParts = Buffer.concat([
      head,
      replacement,
      Buffer.from(`\r\n--${boundary}\r\nContent-Disposition: form-data; name="other"\r\n\r\nx`),
      tail,
    ]);
    const cases: {
      name: string;
      headers: Record<string, string>;
      body: Buffer;
      stopAfter?: number;
      status?: number;
      message?: RegExp;
    }[] = [
      {
        name: 'two parts',
        headers: { 'content-type': contentType },
        body: twoParts,
        status: 400,
        message: /more than one part/,
      },
      {
        name: 'no closing boundary',
        headers: { 'content-type': contentType },
        body: Buffer.concat([head, replacement]),
        status: 400,
        message: /ends before the closing boundary/,
      },
      {
        name: 'not multipart',
        headers: { 'content-type': 'application/octet-stream' },
        body: replacement,
        status: 400,
        message: /multipart\/form-data/,
      },
      {
        name: 'oversize, declared',
        headers: { 'content-type': contentType },
        body: Buffer.concat([head, randomBytes(1024 * 1024 + 1), tail]),
        status: 413,
        message: /limit/,
      },
      {
        name: 'oversize, chunked',
        headers: { 'content-type': contentType, 'transfer-encoding': 'chunked' },
        body: Buffer.concat([head, randomBytes(1024 * 1024 + 1), tail]),
        status: 413,
        message: /limit/,
      },
      {
        name: 'client dies mid-upload',
        headers: { 'content-type': contentType },
        body: Buffer.concat([head, replacement, tail]),
        stopAfter: head.length + 100_000,
      },
    ];
    for (const c of cases) {
      const headers: Record<string, string> = { ...auth, ...c.headers };
      if (!c.headers['transfer-encoding']) headers['content-length'] = String(c.body.length);
      const answer = await rawUpload(url, headers, c.body, c.stopAfter);
      if (c.status) {
        assert.ok(answer !== 'dropped', `${c.name}: answered`);
        assert.equal(answer.status, c.status, `${c.name}: status`);
        assert.match(JSON.parse(answer.body).message, c.message as RegExp, `${c.name}: message`);
      }
    }
    const badMode = await fetch(gatewayUrl(cluster, '/v1/fs/kept.bin?mode=rwx'), {
      method: 'POST',
      headers: { ...auth, 'content-type': good.contentType },
      body: good.body,
    });
    assert.equal(badMode.status, 400);
    assert.match(((await badMode.json()) as { message: string }).message, /mode must be a decimal/);

    await new Promise((resolve) => setTimeout(resolve, 500)); // a cancelled upload would have landed by now
    assert.deepEqual(
      cluster.backends.map((_, i) => filesOnBackend(cluster, i, charmId)),
      before,
      'every backend still holds the original bytes',
    );
    assert.deepEqual(
      await state.manifest.entry(charmId, '/kept.bin'),
      manifestBefore,
      'no version was recorded',
    );
  });

  it('Redis down: writes are refused with a clear 503, reads keep working', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'oscar');
    const auth = { authorization: `bearer ${tokens(cluster).valid(charmId)}` };
    const file = uploadBody(Buffer.from('kept\n'));
    const put = await fetch(gatewayUrl(cluster, '/v1/fs/a.txt?mode=420'), {
      method: 'POST',
      headers: { ...auth, 'content-type': file.contentType },
      body: file.body,
    });
    assert.equal(put.status, 200);
    await state.waitForDrain(charmId);
    await cluster.redis.process.stop();
    const refused = await fetch(gatewayUrl(cluster, '/v1/fs/b.txt?mode=420'), {
      method: 'POST',
      headers: { ...auth, 'content-type': file.contentType },
      body: file.body,
    });
    assert.equal(refused.status, 503);
    assert.match(
      ((await refused.json()) as { message: string }).message,
      /cannot reach Redis.*nothing was changed/,
    );
    const read = await fetch(gatewayUrl(cluster, '/v1/fs/a.txt'), { headers: auth });
    assert.equal(read.status, 200);
    assert.equal(await read.text(), 'kept\n');
    for (let i = 0; i < cluster.backends.length; i++)
      assert.ok(!filesOnBackend(cluster, i, charmId).has('/b.txt'));
    await cluster.redis.process.start();
  });
});
