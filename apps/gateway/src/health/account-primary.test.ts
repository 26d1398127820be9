// Two gateways on one real Redis, each with its own health view: they must always route SSH to the same backend.
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { accountKeys } from '@cring/accounts';
import type { Backend } from '@cring/charm';
import { startScratchRedis } from '@cring/local-cluster';
import { createLogger } from '@cring/service-runtime';
import { Redis } from 'ioredis';
import { type AccountPrimary, createAccountPrimary } from './account-primary.ts';

const backends: Backend[] = ['b1', 'b2', 'b3'].map((name, i) => ({
  name,
  httpUrl: `http://127.0.0.1:${4001 + i}`,
  sshHost: '127.0.0.1',
  sshPort: 5001 + i,
}));
const logger = createLogger({ name: 'account-primary-test', level: 'silent' });
const TTL_MS = 15_000;

describe('account primary lease', () => {
  let scratch: Awaited<ReturnType<typeof startScratchRedis>>;
  before(async () => {
    scratch = await startScratchRedis();
  });
  after(() => scratch.stop());
  beforeEach(() => scratch.redis.del(accountKeys.primary()));

  /** A gateway: its own set of backends it believes down, and its lease client. */
  const gateway = (redis: Redis = scratch.redis) => {
    const down = new Set<string>();
    const primary = createAccountPrimary({
      redis,
      backends,
      isSshHealthy: (name) => !down.has(name),
      leaseTtlMs: TTL_MS,
      logger,
    });
    return { down, primary };
  };
  const route = async (p: AccountPrimary, failed: string[] = []) => (await p.choose(failed))?.name;

  it('gateways starting together agree on one holder, with a lifetime', async () => {
    const a = gateway();
    const b = gateway();
    a.down.add('b1'); // a believes b1 down, b does not: still one holder
    const [fromA, fromB] = await Promise.all([a.primary.maintain(), b.primary.maintain()]).then(() =>
      Promise.all([route(a.primary), route(b.primary)]),
    );
    assert.equal(fromA, fromB);
    const ttl = await scratch.redis.pttl(accountKeys.primary());
    assert.ok(ttl > 0 && ttl <= TTL_MS, `lease lifetime ${ttl} ms`);
  });

  it('moves when the holder is down, and the gateway that still sees it up follows at once', async () => {
    const a = gateway();
    const b = gateway();
    await a.primary.maintain();
    assert.equal(await route(b.primary), 'b1');
    a.down.add('b1');
    await a.primary.maintain();
    assert.equal(await route(a.primary), 'b2');
    assert.equal(await route(b.primary), 'b2', 'b believes b1 up, yet routes to the lease holder');
    await b.primary.maintain();
    assert.equal(await route(b.primary), 'b2', "b's renewal does not move it back");
  });

  it('is sticky: a holder that failed and came back does not take it back', async () => {
    const a = gateway();
    await a.primary.maintain();
    a.down.add('b1');
    await a.primary.maintain();
    a.down.delete('b1');
    await a.primary.maintain();
    assert.equal(await route(a.primary), 'b2');
  });

  it('a failed connect moves it once, even when two gateways fail over at the same moment', async () => {
    const a = gateway();
    const b = gateway();
    await a.primary.maintain();
    // Different views of what comes next: a thinks b2 is down, b thinks b3 is down.
    a.down.add('b2');
    b.down.add('b3');
    const [fromA, fromB] = await Promise.all([route(a.primary, ['b1']), route(b.primary, ['b1'])]);
    assert.equal(fromA, fromB, 'one compare-and-set wins, the other reads its result');
    assert.notEqual(fromA, 'b1');
    assert.equal(await scratch.redis.get(accountKeys.primary()), fromA);
  });

  it('a lease naming a backend that is no longer configured is replaced', async () => {
    await scratch.redis.set(accountKeys.primary(), 'removed-backend', 'PX', TTL_MS);
    assert.equal(await route(gateway().primary), 'b1');
  });

  it('with every backend tried and refused, there is nowhere to go', async () => {
    assert.equal(await route(gateway().primary, ['b1', 'b2', 'b3']), undefined);
  });

  it("while Redis is unreachable, routes by the gateway's own view", async () => {
    const dead = new Redis('redis://127.0.0.1:1', {
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      lazyConnect: true,
    });
    dead.on('error', () => {});
    const alone = gateway(dead);
    alone.down.add('b1');
    assert.equal(await route(alone.primary), 'b2');
    assert.equal(await route(alone.primary, ['b2']), 'b3');
    await alone.primary.maintain(); // never throws
    dead.disconnect();
  });
});
