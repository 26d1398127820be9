import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backendQueueName, QUEUE_PREFIX, S3_QUEUE } from '@cring/jobs';
import { createRing } from '@cring/ring';
import { Queue } from 'bullmq';
import { newUser, sameKeyClient } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { kvSetSeenBy } from '../harness/kv.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';
import { waitFor } from '../harness/wait.ts';

describe('the replicated pipeline, with the real charm CLI through the gateway', () => {
  it('fs and kv commands work, and every owner and S3 end byte-identical', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'alice');
    const work = join(cluster.topology().runDir, 'work');
    mkdirSync(join(work, 'album', 'nested'), { recursive: true });
    writeFileSync(join(work, 'note.txt'), 'a note\n');
    writeFileSync(join(work, 'album', 'one.bin'), randomBytes(200_000));
    writeFileSync(join(work, 'album', 'nested', 'two.txt'), 'two\n');
    writeFileSync(join(work, 'gone.txt'), 'to be deleted\n');

    await charm.run(['fs', 'cp', join(work, 'note.txt'), 'charm:/note.txt']);
    await charm.run(['fs', 'cp', '-r', join(work, 'album'), 'charm:/photos']);
    await charm.run(['fs', 'cp', join(work, 'gone.txt'), 'charm:/gone.txt']);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/note.txt'])).stdout, 'a note\n');
    assert.equal((await charm.run(['fs', 'cat', 'charm:/photos/album/nested/two.txt'])).stdout, 'two\n');
    const ls = (await charm.run(['fs', 'ls', 'charm:/'])).stdout;
    for (const name of ['note.txt', 'photos', 'gone.txt']) assert.match(ls, new RegExp(name));
    const tree = (await charm.run(['fs', 'tree', 'charm:/photos'])).stdout;
    assert.match(tree, /album\/nested\/two\.txt/);
    assert.match(tree, /album\/one\.bin/);
    await charm.run(['fs', 'rm', 'charm:/gone.txt']);
    assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /gone\.txt/);

    await charm.run(['kv', 'set', 'colour', 'teal']);
    const list = (await charm.run(['kv', 'list'])).stdout;
    assert.match(list, /colour\tteal|colour\s+teal/);

    // A second device holding the same key sees the same files and, after a sync, the same kv data both ways.
    const laptop = sameKeyClient(cluster, 'alice', 'laptop');
    assert.equal((await laptop.run(['fs', 'cat', 'charm:/note.txt'])).stdout, 'a note\n');
    await kvSetSeenBy(charm, [laptop], 'shape', 'round');
    await kvSetSeenBy(laptop, [charm], 'size', 'large');

    await state.waitForDrain(charmId);
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.ok(reference.size >= 6, `expected the files and kv backups, got ${[...reference.keys()]}`);
    for (let i = 1; i < cluster.backends.length; i++) {
      assert.deepEqual(filesOnBackend(cluster, i, charmId), reference, `backend ${i + 1} is identical`);
    }
    assert.deepEqual(await objectsInS3(cluster, charmId), reference, 'S3 holds the same bytes');
    // The deleted file is gone everywhere (its encrypted name is the only path that disappeared).
    const entries = await state.manifest.entriesWithin(charmId);
    const tombstones = [...entries].filter(([, e]) => e.kind === 'tombstone').map(([path]) => path);
    assert.equal(tombstones.length, 1);
    for (const path of tombstones) {
      assert.ok(!reference.has(path as string));
      assert.ok(!(await objectsInS3(cluster, charmId)).has(path as string));
    }
    // Every live manifest entry names the bytes every backend holds.
    for (const [path, entry] of entries) {
      if (entry.kind === 'file') assert.equal(reference.get(path), entry.sha256, `sha256 of ${path}`);
    }
  });
});

describe('the remaining copies of a small write (its third owner, S3) come from the gateway', () => {
  it('at once with the replicator frozen; a large write, and one whose gateway is killed mid-copy, from the replicator', async (t) => {
    const cluster = await useCluster(t, { appEnv: { CRING_REMAINING_COPIES_FALLBACK_MS: '2000' } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'third');
    const names = cluster.backends.map((b) => b.info.name);
    const third = createRing(names).preferenceList(charmId, 3)[2] as string;
    const thirdIndex = names.indexOf(third);
    const queue = new Queue(backendQueueName(third), { connection: state.redis, prefix: QUEUE_PREFIX });
    const s3Queue = new Queue(S3_QUEUE, { connection: state.redis, prefix: QUEUE_PREFIX });
    t.after(() => Promise.all([queue.close(), s3Queue.close()]));
    const authorization = `bearer ${tokens(cluster).valid(charmId)}`;
    const put = async (path: string, bytes: Buffer) => {
      const { body, contentType } = uploadBody(bytes);
      const answer = await fetch(gatewayUrl(cluster, `/v1/fs${path}?mode=420`), {
        method: 'POST',
        headers: { authorization, 'content-type': contentType },
        body,
        signal: AbortSignal.timeout(20_000), // the answer never waits for the owner the quorum left out
      });
      assert.equal(answer.status, 200, await answer.text());
      const entry = await state.manifest.entry(charmId, path);
      assert.ok(entry?.kind === 'file');
      return {
        entry,
        jobId: `replicate-${charmId}-${entry.version}`,
        backupJobId: `backup-${charmId}-${entry.version}`,
      };
    };
    const holdsIt = (path: string) => async () => {
      const entry = await state.manifest.entry(charmId, path);
      return entry?.kind === 'file' && entry.holders.includes(third);
    };
    const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

    await put('/synced.txt', Buffer.from('the account is on every backend'));
    await state.waitForDrain(charmId);
    // Only the gateway can copy while the replicator is frozen.
    cluster.replicator?.kill('SIGSTOP');
    t.after(() => cluster.replicator?.kill('SIGCONT'));
    const small = randomBytes(20_000);
    const { jobId: smallJob, backupJobId: smallBackup } = await put('/small.bin', small);
    await waitFor(`${third} recorded as a holder of the small write`, holdsIt('/small.bin'));
    assert.equal(filesOnBackend(cluster, thirdIndex, charmId).get('/small.bin'), sha256(small));
    await waitFor('its fallback jobs cancelled and their pending markers cleared', async () => {
      const pending = await state.manifest.pendingJobs(charmId);
      return (
        !(await queue.getJob(smallJob)) &&
        !(await s3Queue.getJob(smallBackup)) &&
        !pending.some((p) => p.jobId === smallJob || p.jobId === smallBackup)
      );
    });
    assert.equal((await objectsInS3(cluster, charmId)).get('/small.bin'), sha256(small), 'backed up');

    // A body the gateway does not keep in memory (above CRING_SPOOL_MEMORY_BYTES) is the replicator's.
    const large = randomBytes(2 * 1024 * 1024);
    const { entry: largeEntry, jobId: largeJob, backupJobId: largeBackup } = await put('/large.bin', large);
    assert.deepEqual(largeEntry.holders.includes(third), false);
    assert.equal(await (await queue.getJob(largeJob))?.getState(), 'waiting');
    assert.equal(await (await s3Queue.getJob(largeBackup))?.getState(), 'waiting');

    // The third owner stalls, so the copy hangs; the gateway is killed before it could record it. The delayed
    // fallback job (or, had the health monitor seen the stall first, the replicate job itself) copies it.
    const thirdBackend = cluster.backends[thirdIndex];
    thirdBackend?.process.kill('SIGSTOP');
    t.after(() => thirdBackend?.process.kill('SIGCONT'));
    const stalled = randomBytes(20_000);
    const { jobId: stalledJob } = await put('/stalled.bin', stalled);
    assert.match(String(await (await queue.getJob(stalledJob))?.getState()), /^(delayed|waiting)$/);
    const gateway = cluster.gateway;
    assert.ok(gateway?.pid);
    gateway.kill('SIGKILL');
    await waitFor('the gateway to die', () => !gateway.isRunning);
    thirdBackend?.process.kill('SIGCONT');
    cluster.replicator?.kill('SIGCONT');
    await gateway.start();
    await waitFor(`${third} holding the stalled write, from its job`, holdsIt('/stalled.bin'), 60_000);
    await state.waitForDrain(charmId);
    const expected = new Map([
      ['/synced.txt', sha256(Buffer.from('the account is on every backend'))],
      ['/small.bin', sha256(small)],
      ['/large.bin', sha256(large)],
      ['/stalled.bin', sha256(stalled)],
    ]);
    for (const index of names.keys()) {
      assert.deepEqual(
        filesOnBackend(cluster, index, charmId),
        expected,
        `${names[index]} holds every write`,
      );
    }
    assert.deepEqual(await objectsInS3(cluster, charmId), expected, 'S3 holds every write');
  });
});
