import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { singleFileMultipart } from '@cring/charm';
import { createRing } from '@cring/ring';
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

  it('Redis down: an owner that missed the last overwrite or delete is never relayed; what the owners agree on is', async (t) => {
    const cluster = await useCluster(t, { appEnv: { CRING_HEALTH_INTERVAL_MS: '300' } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'lagging');
    const auth = { authorization: `bearer ${tokens(cluster).valid(charmId)}` };
    const put = async (path: string, text: string | Buffer) => {
      const file = uploadBody(Buffer.from(text));
      const answer = await fetch(gatewayUrl(cluster, `/v1/fs${path}?mode=420`), {
        method: 'POST',
        headers: { ...auth, 'content-type': file.contentType },
        body: file.body,
      });
      assert.equal(answer.status, 200, await answer.text());
    };
    await put('/same.txt', 'on every owner\n');
    await put('/over.txt', 'version 1\n');
    await put('/gone.txt', 'deleted later\n');
    const large = randomBytes(1536 * 1024); // above what agreement keeps from each owner: read again once agreed
    await put('/large.bin', large);
    await state.waitForDrain(charmId);
    // The user's first owner misses an overwrite and a delete (down, its repairs frozen with the replicator).
    const names = cluster.backends.map((b) => b.info.name);
    const first = createRing(names).preferenceList(charmId, 3)[0] as string;
    const firstBackend = cluster.backends[names.indexOf(first)];
    cluster.replicator?.kill('SIGSTOP');
    t.after(() => cluster.replicator?.kill('SIGCONT'));
    await firstBackend?.process.stop();
    await put('/over.txt', 'version 2\n');
    const deleted = await fetch(gatewayUrl(cluster, '/v1/fs/gone.txt'), { method: 'DELETE', headers: auth });
    assert.equal(deleted.status, 200);
    await firstBackend?.process.start();
    const gatewaySeesUp = async () => {
      const status = (await (
        await fetch(`http://127.0.0.1:${cluster.gatewayPorts.adminPort}/status`)
      ).json()) as {
        backends: { name: string; http: boolean }[];
      };
      return status.backends.find((b) => b.name === first)?.http === true;
    };
    for (const deadline = Date.now() + 30_000; !(await gatewaySeesUp()); ) {
      assert.ok(Date.now() < deadline, `the gateway never saw ${first} up again`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');
    const lagging = filesOnBackend(cluster, names.indexOf(first), charmId);
    assert.equal(lagging.get('/over.txt'), sha256('version 1\n'), `${first} missed the overwrite`);
    assert.ok(lagging.has('/gone.txt'), `${first} missed the delete`);

    await cluster.redis.process.stop();
    const read = async (path: string) => {
      const answer = await fetch(gatewayUrl(cluster, `/v1/fs${path}`), { headers: auth });
      return { status: answer.status, text: await answer.text() };
    };
    // Before: read by preference order, the first owner answered "version 1" and served the deleted file.
    for (let i = 0; i < 5; i++) {
      const over = await read('/over.txt');
      assert.notEqual(over.text, 'version 1\n', 'the overwritten version was served as the file');
      assert.ok(
        over.status === 503 || (over.status === 200 && over.text === 'version 2\n'),
        JSON.stringify(over),
      );
      const gone = await read('/gone.txt');
      assert.notEqual(gone.status, 200, `the deleted file was served: ${gone.text}`);
      if (gone.status === 503)
        assert.match(gone.text, /manifest \(Redis\) is unreachable.*owners hold different/);
    }
    const same = await read('/same.txt');
    assert.deepEqual(
      same,
      { status: 200, text: 'on every owner\n' },
      'what every owner agrees on is still read',
    );
    const largeRead = await fetch(gatewayUrl(cluster, '/v1/fs/large.bin'), { headers: auth });
    assert.equal(largeRead.status, 200);
    assert.ok(Buffer.from(await largeRead.arrayBuffer()).equals(large), 'a large file the owners agree on');
    await cluster.redis.process.start();
  });
});
