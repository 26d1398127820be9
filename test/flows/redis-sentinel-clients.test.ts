// Every Redis connection the processes make (connectRedis, and the duplicates BullMQ makes of it) follows a
// Sentinel failover by itself: real redis-server and redis-sentinel processes, the sentinels reached through TCP
// hops that delay their answers (sentinels on other hosts, or busy), so that a failover is announced while a client
// is still asking a sentinel for the primary. ioredis' own failover detector ended such clients for good ("Connection
// is closed." on every command): 3 to 4 of these 8 at each failover.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectRedis, type RedisSettings } from '@cring/config';
import { createRedisSentinelSet, findOnPath } from '@cring/local-cluster';
import type { Redis } from 'ioredis';
import { waitForSentinelsToKnowReplicas } from '../harness/sentinel.ts';
import { waitFor } from '../harness/wait.ts';

const CLIENTS = 8;

/** A TCP hop to `port` that holds each answer back by `delayMs`. */
async function delayingHop(port: number, delayMs: number): Promise<Server & { port: number }> {
  const server = createServer((client: Socket) => {
    const upstream = connect(port, '127.0.0.1');
    client.on('data', (bytes) => upstream.write(bytes));
    upstream.on('data', (bytes) => setTimeout(() => client.destroyed || client.write(bytes), delayMs));
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) socket.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(server, { port: (server.address() as { port: number }).port });
}

describe('Redis clients through Sentinel', () => {
  for (const fault of ['killed', 'frozen'] as const) {
    it(`the primary is ${fault}: every client, duplicates too, reaches the promoted replica and none gives up`, async (t) => {
      const runDir = mkdtempSync(join(tmpdir(), 'cring-sentinel-'));
      const set = await createRedisSentinelSet({
        redisBin: findOnPath('redis-server'),
        sentinelBin: findOnPath('redis-sentinel'),
        runDir,
      });
      const processes = [set.primary, ...set.replicas, ...set.sentinels].map((p) => p.process);
      t.after(() => {
        for (const p of processes) p.kill('SIGKILL');
        rmSync(runDir, { recursive: true, force: true });
      });
      for (const p of processes) await p.start();
      await waitForSentinelsToKnowReplicas(set);

      const hops: Server[] = [];
      t.after(() => {
        for (const hop of hops) hop.close();
      });
      const clients: Redis[] = [];
      for (let i = 0; i < CLIENTS; i++) {
        // Each client its own delay, so that their reconnect attempts are not all in step.
        const sentinels = [];
        for (const s of set.sentinels) {
          const hop = await delayingHop(s.port, 20 + 37 * i);
          hops.push(hop);
          sentinels.push({ host: '127.0.0.1', port: hop.port });
        }
        const settings: RedisSettings = {
          sentinels,
          masterName: set.masterName,
          replicaWait: { replicas: 0, timeoutMs: 1_000 },
        };
        // As the gateway connects; every other client a duplicate, as BullMQ makes for its blocking commands.
        const made = connectRedis(settings, {
          maxRetriesPerRequest: 1,
          enableOfflineQueue: false,
          lazyConnect: true,
        });
        const client = i % 2 === 0 ? made : made.duplicate();
        if (client !== made) made.disconnect();
        client.on('error', () => {}); // failures show as the statuses below
        await client.connect();
        await client.set('written-before', 'yes');
        clients.push(client);
      }
      t.after(() => {
        for (const client of clients) client.disconnect();
      });

      set.primary.process.kill(fault === 'killed' ? 'SIGKILL' : 'SIGSTOP');
      const answering = new Set<number>();
      try {
        await waitFor(
          'every client to write to the promoted replica',
          async () => {
            await Promise.all(
              clients.map(async (client, i) => {
                if (answering.has(i)) return;
                try {
                  // Bounded: a command sent to a frozen primary waits until the client leaves it.
                  await Promise.race([
                    client.set('written-after', 'yes'),
                    sleep(2_000).then(() => Promise.reject(new Error('no answer in 2 s'))),
                  ]);
                  answering.add(i);
                } catch {
                  // not yet
                }
              }),
            );
            return answering.size === CLIENTS;
          },
          45_000,
        );
      } finally {
        const statuses = clients.map((c) => c.status);
        assert.deepEqual(
          statuses.filter((s) => s === 'end'),
          [],
          `no client gives up for good (statuses: ${statuses.join(', ')}; ${answering.size} of ${CLIENTS} answer)`,
        );
      }
      const ports = await Promise.all(
        clients.map(async (c) => Number(((await c.config('GET', 'port')) as string[])[1])),
      );
      assert.ok(
        ports.every((port) => port !== set.primary.port),
        'every client writes to a promoted replica',
      );
    });
  }
});
