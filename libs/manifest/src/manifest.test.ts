import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis as startTestRedis } from '@cring/local-cluster';
import { manifestKeys } from './keys.ts';
import { createManifest, type Manifest } from './manifest.ts';

let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
let manifest: Manifest;
before(async () => {
  redisServer = await startTestRedis();
  manifest = createManifest(redisServer.redis);
});
after(async () => redisServer.stop());

let userCounter = 0;
const newUser = () => `user-${++userCounter}`;
const file = (holders = ['a', 'b']) => ({ sha256: 'ab'.repeat(32), size: 5, mode: 420, holders });

describe('manifest versions and tombstones', () => {
  it('gives each change of a user the next version, and records the file', async () => {
    const u = newUser();
    assert.equal(await manifest.commitWrite(u, '/x', file()), 1);
    assert.equal(await manifest.commitWrite(u, '/y', file()), 2);
    assert.equal(await manifest.commitWrite(newUser(), '/x', file()), 1, 'counters are per user');
    const entry = await manifest.governing(u, '/x');
    assert.equal(entry?.kind, 'file');
    assert.equal(entry?.version, 1);
    assert.deepEqual(entry?.holders, ['a', 'b']);
    assert.ok((await manifest.users()).includes(u));
  });

  it('a delete tombstones the prefix, drops the entries below it, and a later write wins again', async () => {
    const u = newUser();
    await manifest.commitWrite(u, '/dir/a', file());
    await manifest.commitWrite(u, '/dir/sub/b', file());
    await manifest.commitWrite(u, '/dirx', file());
    const deleted = await manifest.commitDelete(u, '/dir', ['a', 'b']);
    assert.equal(deleted, 4);
    const under = await manifest.entriesWithin(u, '/dir');
    assert.deepEqual([...under.keys()], ['/dir']);
    assert.equal((await manifest.governing(u, '/dir/sub/b'))?.kind, 'tombstone');
    assert.equal((await manifest.governing(u, '/dir/sub/b'))?.path, '/dir');
    assert.equal((await manifest.governing(u, '/dirx'))?.kind, 'file', '/dirx is not below /dir');
    await manifest.commitWrite(u, '/dir/sub/b', file(['c']));
    const after = await manifest.governing(u, '/dir/sub/b');
    assert.equal(after?.kind, 'file');
    assert.equal(after?.version, 5);
    assert.equal((await manifest.governing(u, '/dir/other'))?.kind, 'tombstone');
  });

  it('a root delete covers everything', async () => {
    const u = newUser();
    await manifest.commitWrite(u, '/a/b', file());
    await manifest.commitDelete(u, '/', ['a']);
    assert.equal((await manifest.governing(u, '/a/b'))?.path, '/');
    assert.deepEqual([...(await manifest.entriesWithin(u)).keys()], ['/']);
  });

  it('adds or removes holders only while the version still governs', async () => {
    const u = newUser();
    const v1 = await manifest.commitWrite(u, '/f', file(['a']));
    assert.equal(await manifest.addHolder(u, '/f', v1, 'b'), true);
    assert.equal(await manifest.addHolder(u, '/f', v1, 'b'), true, 'idempotent');
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a', 'b']);
    const v2 = await manifest.commitWrite(u, '/f', file(['a']));
    assert.equal(await manifest.addHolder(u, '/f', v1, 'c'), false, 'stale version');
    assert.equal(await manifest.removeHolder(u, '/f', v2, 'a'), true);
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, []);
    const tomb = await manifest.commitDelete(u, '/f', ['a']);
    assert.equal(await manifest.addHolder(u, '/f', tomb, 'b'), true, 'tombstones have holders too');
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a', 'b']);
    assert.equal(await manifest.addHolder(u, '/missing', 1, 'b'), false);
  });

  it('tracks pending changes per backend', async () => {
    const u = newUser();
    await manifest.addPending(u, 'c', 'replicate-1');
    await manifest.addPending(u, 'c', 'replicate-2');
    await manifest.addPending(u, 'b', 'delete-3');
    assert.deepEqual([...(await manifest.pendingBackends(u))].sort(), ['b', 'c']);
    await manifest.removePending(u, 'c', 'replicate-1');
    await manifest.removePending(u, 'b', 'delete-3');
    assert.deepEqual([...(await manifest.pendingBackends(u))], ['c']);
  });

  it('keeps the highest seq ever handed out', async () => {
    const u = newUser();
    assert.equal(await manifest.seqFloor(u, 'db'), -1);
    assert.equal(await manifest.raiseSeqFloor(u, 'db', 3), 3);
    assert.equal(await manifest.raiseSeqFloor(u, 'db', 2), 3);
    assert.equal(await manifest.seqFloor(u, 'db'), 3);
  });
});

describe('path locks', () => {
  it('serialise racing read-modify-write sequences on one path', async () => {
    const u = newUser();
    const key = 'cring:test:counter';
    await redisServer.redis.set(key, '0');
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        const lock = await manifest.lockPath(u, '/same');
        try {
          const value = Number(await redisServer.redis.get(key));
          await new Promise((resolve) => setTimeout(resolve, 2));
          await redisServer.redis.set(key, String(value + 1));
        } finally {
          await lock.release();
        }
      }),
    );
    assert.equal(await redisServer.redis.get(key), '20');
  });

  it('exclude ancestors and descendants but not siblings', async () => {
    const u = newUser();
    const held = await manifest.lockPath(u, '/a/b');
    await assert.rejects(manifest.lockPath(u, '/a', { waitMs: 50 }), /still in progress/);
    await assert.rejects(manifest.lockPath(u, '/a/b/c', { waitMs: 50 }), /still in progress/);
    await assert.rejects(manifest.lockPath(u, '/', { waitMs: 50 }), /still in progress/);
    const sibling = await manifest.lockPath(u, '/a/bc', { waitMs: 50 });
    const otherUser = await manifest.lockPath(newUser(), '/a/b', { waitMs: 50 });
    await Promise.all([sibling.release(), otherUser.release(), held.release(), held.release()]);
    const again = await manifest.lockPath(u, '/a', { waitMs: 50 });
    await again.release();
  });

  it('expire when their holder stopped renewing them', async () => {
    const u = newUser();
    await redisServer.redis.hset(
      manifestKeys.locks(u),
      '/p',
      JSON.stringify({ token: 'dead', exp: Date.now() - 1 }),
    );
    const lock = await manifest.lockPath(u, '/p', { waitMs: 50 });
    await lock.release();
  });
});
