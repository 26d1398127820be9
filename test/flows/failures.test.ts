import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { backendQueueName, QUEUE_PREFIX, S3_QUEUE } from '@cring/jobs';
import { Queue } from 'bullmq';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';

function localFile(dir: string, name: string, bytes: Buffer | string): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

describe('failures', () => {
  it('one backend down: writes and reads keep working, and it is brought up to date when back', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'bob');
    const dir = cluster.topology().runDir;
    await charm.run(['fs', 'cp', localFile(dir, 'before.txt', 'before\n'), 'charm:/before.txt']);
    await state.waitForDrain(charmId);

    const down = cluster.backends[2];
    await down?.process.stop();
    await charm.run(['fs', 'cp', localFile(dir, 'during.bin', randomBytes(300_000)), 'charm:/during.bin']);
    await charm.run(['fs', 'rm', 'charm:/before.txt']);
    await charm.run(['kv', 'set', 'k', 'v']);
    assert.equal((await charm.run(['fs', 'ls', 'charm:/'])).stdout.includes('during.bin'), true);
    assert.equal((await charm.run(['kv', 'get', 'k'])).stdout.trim(), 'v');

    await down?.process.start();
    // Read-your-writes while it is back but not yet repaired: it must not answer for what it missed.
    assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /before\.txt/);
    await state.waitForDrain(charmId);
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.deepEqual(filesOnBackend(cluster, 1, charmId), reference);
    assert.deepEqual(filesOnBackend(cluster, 2, charmId), reference, 'the returning backend caught up');
    assert.deepEqual(await objectsInS3(cluster, charmId), reference);
  });

  it('two backends down: writes answer 503 and nothing is acknowledged, recorded or queued', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    const queues = [...cluster.backends.map((b) => backendQueueName(b.info.name)), S3_QUEUE].map(
      (name) => new Queue(name, { connection: state.redis, prefix: QUEUE_PREFIX }),
    );
    t.after(async () => {
      await Promise.all(queues.map((q) => q.close()));
      state.close();
    });
    const { charm, charmId } = await newUser(cluster, 'carol');
    const dir = cluster.topology().runDir;
    await charm.run(['fs', 'cp', localFile(dir, 'kept.txt', 'kept\n'), 'charm:/kept.txt']);
    await state.waitForDrain(charmId);
    const counts = async () => Promise.all(queues.map((q) => q.getJobCounts()));
    const before = {
      entries: [...(await state.manifest.entriesWithin(charmId))],
      version: await state.redis.get(`cring:{${charmId}}:version`),
      counts: await counts(),
      pending: await state.manifest.pendingJobs(charmId),
    };

    await Promise.all([cluster.backends[1]?.process.stop(), cluster.backends[2]?.process.stop()]);
    const write = await charm.attempt([
      'fs',
      'cp',
      localFile(dir, 'lost.txt', 'never acked\n'),
      'charm:/lost.txt',
    ]);
    assert.notEqual(write.code, 0, 'the write is refused');
    assert.match(write.stdout + write.stderr, /503|only 1 of the 2 backends/);
    const remove = await charm.attempt(['fs', 'rm', 'charm:/kept.txt']);
    assert.notEqual(remove.code, 0, 'the delete is refused');

    assert.deepEqual(
      {
        entries: [...(await state.manifest.entriesWithin(charmId))],
        version: await state.redis.get(`cring:{${charmId}}:version`),
        counts: await counts(),
        pending: await state.manifest.pendingJobs(charmId),
      },
      before,
    );
    // The surviving backend still serves what was acknowledged.
    assert.equal((await charm.run(['fs', 'cat', 'charm:/kept.txt'])).stdout, 'kept\n');
  });

  it('S3 down: user traffic is unaffected and backups drain once it is back', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'dave');
    const dir = cluster.topology().runDir;
    await cluster.s3.process.stop();
    await charm.run(['fs', 'cp', localFile(dir, 'a.bin', randomBytes(100_000)), 'charm:/a.bin']);
    await charm.run(['fs', 'cp', localFile(dir, 'b.txt', 'b\n'), 'charm:/b.txt']);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/b.txt'])).stdout, 'b\n');
    const pendingS3 = (await state.manifest.pendingJobs(charmId)).filter((p) => p.backend === 's3');
    assert.equal(pendingS3.length, 2, 'two backups wait for S3');

    await cluster.s3.process.start();
    await state.waitForDrain(charmId);
    assert.deepEqual(await objectsInS3(cluster, charmId), filesOnBackend(cluster, 0, charmId));
  });
});
