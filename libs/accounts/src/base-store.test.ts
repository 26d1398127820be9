import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis as startTestRedis } from '@cring/local-cluster';
import {
  type AccountBaseStore,
  createMemoryAccountBaseStore,
  createRedisAccountBaseStore,
} from './base-store.ts';
import { AccountSyncLockLostError } from './errors.ts';
import { accountKeys } from './keys.ts';
import type { BaseEntry } from './merge.ts';
import { user } from './test-charm-db.ts';

/** What every AccountBaseStore must do, run against each implementation. */
function storeConformance(makeStore: () => Promise<AccountBaseStore>) {
  it('lets one round hold the lock at a time', async () => {
    const store = await makeStore();
    const token = await store.acquireLock(10_000);
    assert.ok(token);
    assert.equal(await store.acquireLock(10_000), undefined);
    assert.equal(await store.extendLock('not-mine', 10_000), false);
    assert.equal(await store.extendLock(token, 10_000), true);
    await store.releaseLock('not-mine');
    assert.equal(await store.acquireLock(10_000), undefined);
    await store.releaseLock(token);
    await store.releaseLock(token);
    const again = await store.acquireLock(10_000);
    assert.ok(again);
    await store.releaseLock(again);
  });

  it('writes entries, markers and pending markers together, and tracks lagging users', async () => {
    const store = await makeStore();
    const token = (await store.acquireLock(10_000)) ?? assert.fail('no lock');
    const a: BaseEntry = { user: user('a', ['ssh-ed25519 AAAA']), removedKeys: ['ssh-ed25519 BBBB'] };
    const b: BaseEntry = { user: null, refs: { b2: user('b', ['ssh-ed25519 CCCC']) } };
    await store.write(token, {
      entries: new Map([
        ['a', a],
        ['b', b],
      ]),
      markers: { b1: 'm1' },
      pendingMarkers: { b1: 'm2', b2: 'm3' },
    });
    assert.deepEqual(await store.readEntries(['a', 'missing']), new Map([['a', a]]));
    assert.deepEqual(
      await store.readEntries(),
      new Map<string, unknown>([
        ['a', a],
        ['b', b],
      ]),
    );
    assert.deepEqual(await store.laggingUsers(), ['b']);
    assert.deepEqual(await store.readMarkers(), { current: { b1: 'm1' }, pending: { b1: 'm2', b2: 'm3' } });

    await store.write(token, {
      entries: new Map([['b', { user: null }]]),
      markers: { b1: 'm2' },
      clearPendingMarkers: ['b1', 'b2'],
    });
    assert.deepEqual(await store.laggingUsers(), []);
    assert.deepEqual(await store.readMarkers(), { current: { b1: 'm2' }, pending: {} });
    await store.releaseLock(token);
  });

  it('refuses to write without the lock', async () => {
    const store = await makeStore();
    const token = (await store.acquireLock(10_000)) ?? assert.fail('no lock');
    await store.releaseLock(token);
    await assert.rejects(store.write(token, { markers: { b1: 'x' } }), AccountSyncLockLostError);
    assert.deepEqual((await store.readMarkers()).current, {});
  });
}

describe('memory AccountBaseStore', () => {
  storeConformance(async () => createMemoryAccountBaseStore());
});

describe('Redis AccountBaseStore', () => {
  let redis: Awaited<ReturnType<typeof startTestRedis>>;
  before(async () => {
    redis = await startTestRedis();
  });
  after(async () => {
    await redis?.stop();
  });
  storeConformance(async () => {
    await redis.redis.flushall();
    return createRedisAccountBaseStore(redis.redis);
  });

  it('keeps every key under one hash tag (one Redis Cluster slot)', () => {
    for (const key of Object.values(accountKeys)) assert.match(key(), /^cring:\{accounts\}:/);
  });
});
