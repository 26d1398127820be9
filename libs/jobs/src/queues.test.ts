import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis } from '@cring/local-cluster';
import { createManifest } from '@cring/manifest';
import { Queue } from 'bullmq';
import type { ReplicateJob } from './payloads.ts';
import { backendQueueName, createJobQueues, failedAdds, jobIdOf, QUEUE_PREFIX, S3_QUEUE } from './queues.ts';

let redisServer: Awaited<ReturnType<typeof startScratchRedis>>;
before(async () => {
  redisServer = await startScratchRedis();
});
after(async () => redisServer.stop());

let userCounter = 0;
const replicate = (version: number): ReplicateJob => ({
  kind: 'replicate',
  charmId: `jobs-user-${++userCounter}`,
  path: '/f',
  version,
  sha256: 'ab'.repeat(32),
  size: 5,
  mode: 420,
  sources: ['a', 'b'],
});

describe('jobs sent at once', () => {
  it('are queued as BullMQ jobs with their pending markers, and a repeat collapses into the same job', async () => {
    const redis = redisServer.redis;
    const manifest = createManifest(redis);
    const backend = `b${Date.now()}`;
    const queues = createJobQueues({ connection: redis, manifest, backends: [backend] });
    const job = replicate(7);
    const backup = { ...job, kind: 'backup' as const };
    await queues.ready();
    for (let round = 0; round < 2; round++) {
      const settled = await Promise.allSettled(queues.send([{ backend, job }, { s3: backup }]));
      assert.equal(settled.length, 4, 'a pending marker and a job each');
      assert.ok(settled.every((s) => s.status === 'fulfilled'));
    }
    const queue = new Queue(backendQueueName(backend), { connection: redis, prefix: QUEUE_PREFIX });
    const s3 = new Queue(S3_QUEUE, { connection: redis, prefix: QUEUE_PREFIX });
    try {
      const queued = await queue.getJob(jobIdOf(job));
      assert.deepEqual(queued?.data, job);
      assert.equal(queued?.opts.attempts, 12, 'the default job options apply');
      assert.equal(await queued?.getState(), 'waiting');
      assert.equal(await queue.getWaitingCount(), 1, 'the repeat collapsed');
      assert.deepEqual((await s3.getJob(jobIdOf(backup)))?.data, backup);
      const pending = await manifest.pendingJobs(job.charmId);
      assert.deepEqual(pending.map((p) => `${p.backend}|${p.jobId}`).sort(), [
        `${backend}|${jobIdOf(job)}`,
        `s3|${jobIdOf(backup)}`,
      ]);
    } finally {
      await queue.close();
      await s3.close();
      await queues.close();
    }
  });

  it('refuse to go out before the queues are ready, rather than drop the job', async () => {
    const redis = redisServer.redis.duplicate();
    const queues = createJobQueues({ connection: redis, manifest: createManifest(redis), backends: ['x'] });
    try {
      const sent = queues.send([{ backend: 'x', job: replicate(1) }]);
      await Promise.allSettled(sent);
      await assert.rejects(sent[1] as Promise<unknown>, /not loaded: await ready\(\) first/);
    } finally {
      await queues.close();
      redis.disconnect();
    }
  });

  it('report what Redis or BullMQ refused', () => {
    const refused = failedAdds([
      [null, 1],
      [null, 'job-id'],
      [new Error('READONLY'), null],
    ]);
    assert.deepEqual(
      refused.map((e) => e.message),
      ['READONLY'],
    );
  });
});
