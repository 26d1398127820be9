// Redis that survives losing one node: the cluster finds its Redis through three sentinels (a primary and two
// replicas); a write loop through the real gateway goes on while the primary is killed with SIGKILL. Writes must
// resume by themselves after the failover, and every write the gateway acknowledged must still be in the manifest.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectRedis, redisEnvFields, redisFrom } from '@cring/config';
import { createManifest } from '@cring/manifest';
import { z } from 'zod';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { waitForSentinelsToKnowReplicas } from '../harness/sentinel.ts';

const ACKED_BEFORE_KILL = 30;
const ACKED_AFTER_FAILOVER = 30;
const LOOP_DEADLINE_MS = 120_000;

describe('Redis through Sentinel', () => {
  it('the primary is killed mid-loop: writes resume by themselves and no acknowledged write is lost', async (t) => {
    const cluster = await useCluster(t, { redis: 'sentinel', logLevel: 'info' });
    const sentinel = cluster.sentinel ?? assert.fail('no sentinel set');
    const settings = redisFrom(z.object(redisEnvFields).parse(cluster.appEnv), [], { required: true });
    assert.ok(settings?.sentinels, 'the processes find Redis through the sentinels');
    assert.equal(cluster.appEnv.REDIS_URL, undefined);

    await waitForSentinelsToKnowReplicas(sentinel);

    const { charmId } = await newUser(cluster, 'writer');
    const token = tokens(cluster).valid(charmId);
    const acked = new Map<string, string>(); // path → sha256 of what the gateway acknowledged
    const ackTimes: number[] = [];
    const refusals = new Map<number, number>();
    let killedAt = 0;
    let ackedAfterKill = 0;
    const started = Date.now();
    for (let i = 0; ackedAfterKill < ACKED_AFTER_FAILOVER; i++) {
      assert.ok(
        Date.now() - started < LOOP_DEADLINE_MS,
        `writes did not resume (${ackedAfterKill} acknowledged since the kill)`,
      );
      if (!killedAt && acked.size === ACKED_BEFORE_KILL) {
        sentinel.primary.process.kill('SIGKILL');
        killedAt = Date.now();
      }
      const path = `/loop/${i}.txt`;
      const bytes = Buffer.from(`write ${i}\n`);
      const { body, contentType } = uploadBody(bytes);
      let status = 0;
      try {
        const response = await fetch(gatewayUrl(cluster, `/v1/fs${path}?mode=420`), {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
          body,
          signal: AbortSignal.timeout(30_000),
        });
        status = response.status;
        await response.arrayBuffer();
      } catch {
        status = -1;
      }
      if (status === 200) {
        acked.set(path, createHash('sha256').update(bytes).digest('hex'));
        ackTimes.push(Date.now());
        if (killedAt) ackedAfterKill++;
      } else {
        refusals.set(status, (refusals.get(status) ?? 0) + 1);
        await sleep(50); // a client retrying, not a busy loop
      }
    }

    // Read back through the sentinels: whichever replica was promoted must hold every acknowledged write.
    const redis = connectRedis(settings, { maxRetriesPerRequest: 1 });
    redis.on('error', () => {}); // the cluster stops before this client; its commands still fail loudly
    t.after(() => redis.disconnect());
    const manifest = createManifest(redis);
    let lost = 0;
    for (const [path, sha256] of acked) {
      const entry = await manifest.entry(charmId, path);
      if (entry?.kind !== 'file' || entry.sha256 !== sha256) lost++;
    }
    let longestGapMs = 0;
    for (let i = 1; i < ackTimes.length; i++)
      longestGapMs = Math.max(longestGapMs, (ackTimes[i] as number) - (ackTimes[i - 1] as number));
    const promoted = (await redis.call('ROLE')) as [string];
    console.log(
      JSON.stringify({
        acknowledged: acked.size,
        lost,
        secondsWithoutWrites: longestGapMs / 1000,
        refusedWhileFailingOver: Object.fromEntries(refusals),
        newPrimaryRole: promoted[0],
      }),
    );
    assert.equal(lost, 0, 'no acknowledged write is lost from the manifest');
    assert.equal(acked.size, ACKED_BEFORE_KILL + ACKED_AFTER_FAILOVER);
    const primaryPort = Number(((await redis.config('GET', 'port')) as string[])[1]);
    assert.notEqual(primaryPort, sentinel.primary.port, 'a replica was promoted');

    // The cost of WAIT: the same small commit with and without waiting for the remaining replica.
    const timed = async (wait: boolean) => {
      const begin = performance.now();
      for (let i = 0; i < 200; i++) {
        await redis.hset('cring:wait-cost', String(i), 'x');
        if (wait) await redis.wait(1, 1_000);
      }
      return (performance.now() - begin) / 200;
    };
    const plainMs = await timed(false);
    const waitMs = await timed(true);
    console.log(JSON.stringify({ commitMs: plainMs.toFixed(3), commitWithWaitMs: waitMs.toFixed(3) }));

    // A change no replica confirms is refused, never acknowledged: freeze the one replica left and write.
    const replica = sentinel.replicas.find((r) => r.port !== primaryPort) ?? assert.fail('no replica left');
    replica.process.kill('SIGSTOP');
    try {
      const { body, contentType } = uploadBody(Buffer.from('unconfirmed\n'));
      const response = await fetch(gatewayUrl(cluster, '/v1/fs/unconfirmed.txt?mode=420'), {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
        body,
      });
      const text = await response.text();
      assert.equal(response.status, 503, 'not acknowledged while no replica confirms it');
      const answer = JSON.parse(text) as { message: string };
      assert.match(answer.message, /0 of 1 Redis replica\(s\) confirmed .*retry the same request/);
    } finally {
      replica.process.kill('SIGCONT');
    }
  });
});
