import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import type { Cluster } from '@cring/local-cluster';
import { manifestKeys } from '@cring/manifest';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, rawRequest, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';
import { waitFor } from '../harness/wait.ts';

const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

/** The replicator alone copies to the owners the quorum left out: an acknowledged version stays on W holders while it waits. */
const W_HOLDERS_ONLY = { appEnv: { CRING_REMAINING_COPIES: 'false' } };

function client(cluster: Cluster, charmId: string) {
  const authorization = `bearer ${tokens(cluster).valid(charmId)}`;
  const at = (base: string, path: string) => `${base}/v1/fs${path}`;
  return {
    async put(path: string, bytes: Buffer | string, base = gatewayUrl(cluster, '')) {
      const { body, contentType } = uploadBody(Buffer.from(bytes));
      const response = await fetch(`${at(base, path)}?mode=420`, {
        method: 'POST',
        headers: { Authorization: authorization, 'Content-Type': contentType },
        body,
        signal: AbortSignal.timeout(60_000),
      });
      return { status: response.status, text: await response.text() };
    },
    async get(path: string, base = gatewayUrl(cluster, '')) {
      const response = await fetch(at(base, path), {
        headers: { Authorization: authorization },
        signal: AbortSignal.timeout(60_000),
      });
      return { status: response.status, text: await response.text() };
    },
    async remove(path: string) {
      const response = await fetch(at(gatewayUrl(cluster, ''), path), {
        method: 'DELETE',
        headers: { Authorization: authorization },
        signal: AbortSignal.timeout(60_000),
      });
      return { status: response.status, text: await response.text() };
    },
  };
}

const HEALER = 'apps/healer/src/cli.ts';

/**
 * An upload of `bytes` to /p sent but for its last 100 bytes, once the gateway has opened its write intent (its
 * body streams to W owners); `finish` sends the rest and resolves to the raw answer.
 */
async function uploadButTheLastBytes(
  cluster: Cluster,
  state: ReturnType<typeof clusterState>,
  charmId: string,
  bytes: Buffer,
) {
  const { body, contentType } = uploadBody(bytes);
  const socket = connect(cluster.gatewayPorts.httpPort, '127.0.0.1');
  const received: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => received.push(chunk));
  const closed = new Promise((resolve) => socket.once('close', resolve));
  socket.write(
    `POST /v1/fs/p?mode=420 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: bearer ${tokens(cluster).valid(charmId)}\r\n` +
      `Content-Type: ${contentType}\r\nContent-Length: ${body.length}\r\n\r\n`,
  );
  socket.write(body.subarray(0, body.length - 100));
  await waitFor(
    'the upload to open its intent',
    async () => (await state.manifest.intent(charmId, '/p')) !== undefined,
  );
  return {
    async finish(): Promise<string> {
      socket.write(body.subarray(body.length - 100));
      await closed;
      return Buffer.concat(received).toString();
    },
  };
}

/**
 * /p acknowledged on every owner, then an overwrite whose intent and lock Redis loses (restored from a copy taken
 * before the intent) while its body streams; with `redisDownAtCommit`, Redis is stopped before the body completes.
 * The commit is refused (503) with the refused bytes on W owners.
 */
async function overwriteRefusedAfterLostTail(
  t: TestContext,
  name: string,
  options: { redisDownAtCommit: boolean },
) {
  const cluster = await useCluster(t);
  const state = clusterState(cluster);
  t.after(() => state.close());
  const { charmId } = await newUser(cluster, name);
  const acknowledged = Buffer.from(randomBytes(5_000).toString('hex'));
  assert.equal((await client(cluster, charmId).put('/p', acknowledged)).status, 200);
  await state.waitForDrain(charmId); // on every owner: the untouched one gives it back

  const refused = Buffer.from(randomBytes(5_000).toString('hex'));
  const overwrite = await uploadButTheLastBytes(cluster, state, charmId, refused);
  await state.redis.hdel(manifestKeys.intents(charmId), '/p');
  await state.redis.hdel(manifestKeys.locks(charmId), '/p');
  if (options.redisDownAtCommit) await cluster.redis.process.stop();
  const answer = await overwrite.finish();
  assert.match(answer, /^HTTP\/1\.1 503/, answer);
  const stored = cluster.backends.map((_, i) => filesOnBackend(cluster, i, charmId).get('/p'));
  assert.equal(
    stored.filter((sha) => sha === sha256(refused)).length,
    2,
    'W owners stored the refused bytes',
  );
  return { cluster, state, charmId, acknowledged };
}

/** One healer scan (exit 0), then /p served as `expected` and held by every backend, every intent resolved. */
async function scanThenExpect(
  cluster: Cluster,
  state: ReturnType<typeof clusterState>,
  charmId: string,
  expected: Buffer,
  what: string,
): Promise<string> {
  const scan = await runCli(cluster, HEALER, ['--scan', '--user', charmId], { timeoutMs: 300_000 });
  assert.equal(scan.code, 0, scan.stdout + scan.stderr);
  await state.waitForDrain(charmId);
  const read = await client(cluster, charmId).get('/p');
  assert.equal(read.status, 200, read.text);
  assert.equal(read.text, expected.toString(), what);
  for (const index of [0, 1, 2])
    assert.equal(
      filesOnBackend(cluster, index, charmId).get('/p'),
      sha256(expected),
      `backend ${index + 1} holds the acknowledged version`,
    );
  assert.deepEqual(await state.manifest.intents(charmId), [], 'every intent resolved');
  return scan.stdout + scan.stderr;
}

describe('write safety: refused writes are rolled back, answers are the truth', () => {
  it('relays what every backend answers, and a user no backend knows gets their 404', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'iris');
    const fs = client(cluster, charmId);
    const direct = cluster.backends[0]?.info.httpUrl as string;
    assert.equal((await fs.put('/dir/x', 'x')).status, 200);
    await state.waitForDrain(charmId); // every backend has the directory

    // A file over an existing directory: every backend refuses it with its own answer.
    const overDir = await fs.put('/dir', 'y');
    const overDirDirect = await fs.put('/dir', 'y', direct);
    assert.notEqual(overDir.status, 503, overDir.text);
    assert.deepEqual(overDir, overDirDirect);
    assert.equal((await fs.get('/dir/x')).text, 'x', 'the directory is untouched');

    const longName = `/${'n'.repeat(200)}`;
    const tooLong = await fs.put(longName, 'z');
    assert.notEqual(tooLong.status, 503, tooLong.text);
    assert.deepEqual(tooLong, await fs.put(longName, 'z', direct));
    // The read of such a path answers (the backends' own answer), it does not hang on a fallback.
    assert.deepEqual(await fs.get(longName), await fs.get(longName, direct));

    const stranger = client(cluster, randomBytes(16).toString('hex'));
    const read = await stranger.get('/');
    assert.equal(read.status, 404, read.text);
    assert.match(read.text, /missing user/);
    const write = await stranger.put('/a', 'a');
    assert.equal(write.status, 404, write.text);
  });

  it('a write that misses the quorum is rolled back: never served, never adopted, and the answer says so', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'judy');
    const fs = client(cluster, charmId);
    const v1 = randomBytes(50_000);
    assert.equal((await fs.put('/f', v1)).status, 200);
    await state.waitForDrain(charmId);

    await Promise.all([cluster.backends[1]?.process.stop(), cluster.backends[2]?.process.stop()]);
    const fresh = await fs.put('/new.txt', 'never acknowledged');
    assert.equal(fresh.status, 503, fresh.text);
    assert.equal(
      filesOnBackend(cluster, 0, charmId).has('/new.txt'),
      false,
      'rolled back on the backend it reached',
    );
    assert.match(fresh.text, /rolled back/);
    const overwrite = await fs.put('/f', randomBytes(50_000));
    assert.equal(overwrite.status, 503, overwrite.text);
    // Truthful: either the backend it reached holds v1 again, or the answer says it does not (yet).
    if (filesOnBackend(cluster, 0, charmId).get('/f') !== sha256(v1))
      assert.doesNotMatch(overwrite.text, /nothing was changed/);

    await Promise.all([cluster.backends[1]?.process.start(), cluster.backends[2]?.process.start()]);
    for (let i = 0; i < 5; i++) assert.equal((await fs.get('/f')).text, v1.toString(), 'reads serve v1');
    assert.equal((await fs.get('/new.txt')).status, 404);
    const scan = await runCli(cluster, HEALER, ['--scan'], { timeoutMs: 300_000 });
    assert.ok(scan.code === 0 || scan.code === 1, scan.stderr);
    for (const index of [0, 1, 2]) {
      const files = filesOnBackend(cluster, index, charmId);
      assert.equal(files.has('/new.txt'), false, `backend ${index} never got the refused file`);
      assert.equal(files.get('/f'), sha256(v1), `backend ${index} holds the acknowledged v1`);
    }
    assert.deepEqual(await state.manifest.intents(charmId), [], 'every intent resolved');
  });

  it('a client that declares a longer Content-Length than it sends and stalls gets an answer; nothing it sent lands', async (t) => {
    const stallMs = 1500;
    const cluster = await useCluster(t, { appEnv: { CRING_UPLOAD_STALL_TIMEOUT_MS: String(stallMs) } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'liar');
    const fs = client(cluster, charmId);
    // Text, so that reads compare as text.
    const kept = Buffer.from(randomBytes(20_000).toString('hex'));
    assert.equal((await fs.put('/kept.bin', kept)).status, 200);
    await state.waitForDrain(charmId);
    const everyStore = async () => [
      ...cluster.backends.map((_, i) => filesOnBackend(cluster, i, charmId)),
      await objectsInS3(cluster, charmId),
    ];

    // A complete multipart body (closing boundary and all: a charm server stores it once it parsed that) that
    // declares 10 bytes more than it sends, then stalls. The overwrite has the kept file's size, so that its
    // bytes, had any backend stored them, would pass a read's size check.
    const lies = ['/kept.bin', '/new.bin'].map((path) => ({
      path,
      bytes: Buffer.from(randomBytes(kept.length / 2).toString('hex')),
    }));
    for (const lie of lies) {
      const { body, contentType } = uploadBody(lie.bytes);
      const answer = rawRequest(
        cluster.gatewayPorts.httpPort,
        {
          method: 'POST',
          target: `/v1/fs${lie.path}?mode=420`,
          headers: [
            ['Authorization', `bearer ${tokens(cluster).valid(charmId)}`],
            ['Content-Type', contentType],
          ],
          body,
          contentLength: body.length + 10,
        },
        stallMs + 15_000, // the gateway's own stall deadline ends it long before this
      );
      // Until the answer comes: no backend holds the lie's bytes, and no read through the gateway serves them.
      let answered = false;
      void answer.then(() => {
        answered = true;
      });
      const lieSha = sha256(lie.bytes);
      while (!answered) {
        for (const [i, files] of cluster.backends.map(
          (_, i) => [i, filesOnBackend(cluster, i, charmId)] as const,
        ))
          assert.notEqual(files.get(lie.path), lieSha, `backend ${i + 1} stored the unanswered upload`);
        assert.notEqual(sha256((await fs.get(lie.path)).text), lieSha, 'the gateway served it');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const { status, body: text } = await answer;
      assert.equal(status, 408, `${lie.path}: ${text}`);
      assert.match(text, new RegExp(`sent no data for ${stallMs} ms`));
    }

    // The last acknowledged state, on the gateway, every owner and S3, before and after a healer scan.
    const lastAcknowledged = async (when: string) => {
      const read = await fs.get('/kept.bin');
      assert.equal(read.status, 200, `${when}: ${read.text}`);
      assert.equal(sha256(read.text), sha256(kept), `${when}: the kept bytes are served`);
      assert.equal((await fs.get('/new.bin')).status, 404, `${when}: the new path does not exist`);
      for (const [i, files] of (await everyStore()).entries()) {
        assert.equal(files.get('/kept.bin'), sha256(kept), `${when}: store ${i + 1} holds the kept bytes`);
        assert.equal(files.has('/new.bin'), false, `${when}: store ${i + 1} holds no new path`);
      }
    };
    await state.waitForDrain(charmId);
    await lastAcknowledged('after the stalls');
    const scan = await runCli(cluster, HEALER, ['--scan', '--user', charmId], { timeoutMs: 300_000 });
    assert.equal(scan.code, 0, scan.stdout + scan.stderr);
    await state.waitForDrain(charmId);
    await lastAcknowledged('after healer --scan');
    assert.deepEqual(await state.manifest.intents(charmId), [], 'every intent resolved');
  });

  it('an overwrite stored on its owners but never committed is rolled back, even before any job copied the version', async (t) => {
    const cluster = await useCluster(t, W_HOLDERS_ONLY);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'overwriter');
    const fs = client(cluster, charmId);
    assert.equal((await fs.put('/synced', 'the account is on every backend')).status, 200);
    await state.waitForDrain(charmId);
    // The replicator frozen: the acknowledged version is on the W owners that took it and nowhere else.
    cluster.replicator?.kill('SIGSTOP');
    t.after(() => cluster.replicator?.kill('SIGCONT'));
    const acknowledged = Buffer.from(randomBytes(5_000).toString('hex'));
    assert.equal((await fs.put('/p', acknowledged)).status, 200);
    assert.equal((await state.manifest.entry(charmId, '/p'))?.holders.length, 2);

    // An overwrite sent but for its last bytes: the gateway has opened its intent and streams it to W owners.
    const overwrite = await uploadButTheLastBytes(
      cluster,
      state,
      charmId,
      Buffer.from(randomBytes(5_000).toString('hex')),
    );
    // Redis goes before the commit; then the body completes: its owners store the overwrite, nothing records it.
    await cluster.redis.process.stop();
    const answer = await overwrite.finish();
    assert.match(answer, /^HTTP\/1\.1 503/, answer);

    await cluster.redis.process.start();
    cluster.replicator?.kill('SIGCONT');
    // The gateway gives its lock back once Redis is there again; then the healer rolls the overwrite back.
    await waitFor('the failed writer to give its lock back', async () => {
      const locks = await state.redis.hkeys(manifestKeys.locks(charmId)).catch(() => ['unknown']);
      return !locks.includes('/p');
    });
    await scanThenExpect(cluster, state, charmId, acknowledged, 'the acknowledged version is served');
  });

  it('an overwrite whose intent and lock Redis lost before the commit is recorded as refused, rolled back, never adopted', async (t) => {
    const { cluster, state, charmId, acknowledged } = await overwriteRefusedAfterLostTail(t, 'lost-tail', {
      redisDownAtCommit: false,
    });
    const recorded = await state.manifest.intent(charmId, '/p');
    assert.equal(recorded?.state, 'failed', 'the refusal is on record again');
    await scanThenExpect(
      cluster,
      state,
      charmId,
      acknowledged,
      'the acknowledged version is served, the refused one not adopted',
    );
  });

  it('an overwrite refused while Redis is unreachable, its intent lost, is recorded once Redis is back, never adopted', async (t) => {
    const { cluster, state, charmId, acknowledged } = await overwriteRefusedAfterLostTail(t, 'unrecorded', {
      redisDownAtCommit: true,
    });
    await cluster.redis.process.start();
    await waitFor('the gateway to record the refusal again', async () => {
      const recorded = await state.manifest.intent(charmId, '/p').catch(() => undefined);
      return recorded?.state === 'failed';
    });
    await scanThenExpect(
      cluster,
      state,
      charmId,
      acknowledged,
      'the acknowledged version is served, the refused one rolled back, not adopted',
    );
  });

  it('an overwrite refused while Redis is unreachable, its gateway then killed, is recorded by the next gateway, never adopted', async (t) => {
    const { cluster, state, charmId, acknowledged } = await overwriteRefusedAfterLostTail(t, 'forgotten', {
      redisDownAtCommit: true,
    });
    const gateway = cluster.gateway;
    assert.ok(gateway?.pid);
    gateway.kill('SIGKILL'); // before Redis is back: the refusal it was retrying is only in its journal
    await waitFor('the gateway to die', () => !gateway.isRunning);
    await cluster.redis.process.start();
    await gateway.start();
    await waitFor('the next gateway to record the refusal from its journal', async () => {
      const recorded = await state.manifest.intent(charmId, '/p').catch(() => undefined);
      return recorded?.state === 'failed';
    });
    const spoolDir = cluster.gatewayEnv.CRING_SPOOL_DIR as string;
    await waitFor(
      'the journal note to go',
      () => !readdirSync(spoolDir).some((n) => n.startsWith('refusal-')),
    );
    await scanThenExpect(
      cluster,
      state,
      charmId,
      acknowledged,
      'the acknowledged version is served, the refused one rolled back, not adopted',
    );
  });

  it('an acknowledged overwrite whose commit Redis lost (its intent back open) is recovered, not rolled back', async (t) => {
    const cluster = await useCluster(t, W_HOLDERS_ONLY);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'lost-commit');
    const fs = client(cluster, charmId);
    assert.equal((await fs.put('/p', 'the previous version')).status, 200);
    await state.waitForDrain(charmId);
    const previousEntry = await state.redis.hget(manifestKeys.entries(charmId), '/p');
    assert.ok(previousEntry);

    // The acknowledged overwrite: its W holders noted while the replicator waits, then its jobs run.
    cluster.replicator?.kill('SIGSTOP');
    t.after(() => cluster.replicator?.kill('SIGCONT'));
    const acknowledged = Buffer.from(randomBytes(3_000).toString('hex'));
    const startedMs = Date.now();
    assert.equal((await fs.put('/p', acknowledged)).status, 200);
    const touched = (await state.manifest.entry(charmId, '/p'))?.holders ?? [];
    assert.equal(touched.length, 2);
    cluster.replicator?.kill('SIGCONT');
    await state.waitForDrain(charmId);

    // Redis restored from a copy taken after the intent was opened, before the commit: the old entry, the intent
    // open (writing), its lock gone.
    await state.redis.hset(manifestKeys.entries(charmId), '/p', previousEntry);
    await state.redis.hset(
      manifestKeys.intents(charmId),
      '/p',
      JSON.stringify({
        fence: 1,
        at: startedMs,
        owner: 'gateway',
        prev: previousEntry,
        state: 'writing',
        touched,
      }),
    );
    const scan = await scanThenExpect(
      cluster,
      state,
      charmId,
      acknowledged,
      'the acknowledged overwrite is served',
    );
    assert.match(scan, /recovered as v/);
  });

  it('a read never relays a file that an acknowledged delete governs', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'lena');
    const fs = client(cluster, charmId);
    assert.equal((await fs.put('/t', 'to be deleted')).status, 200);
    await state.waitForDrain(charmId);
    await cluster.replicator?.stop(); // the lagging backend keeps its copy
    await cluster.backends[2]?.process.stop();
    assert.equal((await fs.remove('/t')).status, 200);
    await cluster.backends[2]?.process.start();
    await Promise.all([cluster.backends[0]?.process.stop(), cluster.backends[1]?.process.stop()]);
    assert.equal(filesOnBackend(cluster, 2, charmId).has('/t'), true, 'the lagging copy is there');
    const read = await fs.get('/t');
    assert.equal(read.status, 404, read.text);
  });

  it('a gateway killed mid-upload leaves no lock that blocks the path, and its spool files go', async (t) => {
    const cluster = await useCluster(t, { appEnv: { CRING_LOCK_WAIT_MS: '8000' } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'mona');
    const gateway = cluster.gateway;
    assert.ok(gateway?.pid);
    const { body, contentType } = uploadBody(randomBytes(3 * 1024 * 1024));
    const req = request(`${gatewayUrl(cluster, '/v1/fs/big.bin')}?mode=420`, {
      method: 'POST',
      headers: {
        Authorization: `bearer ${tokens(cluster).valid(charmId)}`,
        'Content-Type': contentType,
        'Content-Length': String(body.length),
      },
    });
    req.on('error', () => {});
    req.write(body.subarray(0, 2 * 1024 * 1024)); // past the in-memory threshold: spooled to a file
    const spoolDir = cluster.gatewayEnv.CRING_SPOOL_DIR as string;
    const spoolFiles = () => (existsSync(spoolDir) ? readdirSync(spoolDir) : []);
    // The upload is under way once its path lock is taken (spool files are covered by spool-dir.test.ts).
    await waitFor(
      'the upload to take its lock',
      async () => (await state.redis.hlen(manifestKeys.locks(charmId))) > 0,
    );
    const left = spoolFiles();
    const deadFiles = () => spoolFiles().filter((name) => left.includes(name));
    gateway.kill('SIGKILL');
    await waitFor('the gateway to die', () => !gateway.isRunning);
    req.destroy();
    await gateway.start();
    assert.deepEqual(deadFiles(), [], "the killed gateway's spool files are removed");
    // The lock TTL (30 s) is far longer than the lock wait (8 s): the write only succeeds if the lock was freed.
    const write = await client(cluster, charmId).put('/big.bin', 'after the crash');
    assert.equal(write.status, 200, write.text);
    assert.equal((await client(cluster, charmId).get('/big.bin')).text, 'after the crash');
  });
});
