import assert from 'node:assert/strict';
import type { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis as startTestRedis } from '@cring/local-cluster';
import { manifestKeys } from './keys.ts';
import { createProcessLiveness } from './liveness.ts';
import {
  createManifest,
  LockLostError,
  LockTimeoutError,
  type Manifest,
  NotReplicatedError,
} from './manifest.ts';
import { commitLocked, deleteLocked } from './test-commits.ts';

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
    const first = await commitLocked(manifest, u, '/x', file());
    assert.ok((await commitLocked(manifest, u, '/y', file())) > first, 'versions increase');
    const entry = await manifest.governing(u, '/x');
    assert.equal(entry?.kind, 'file');
    assert.equal(entry?.version, first);
    assert.deepEqual(entry?.holders, ['a', 'b']);
    assert.ok((await manifest.users()).includes(u));
  });

  it('a delete tombstones the prefix, drops the entries below it, and a later write wins again', async () => {
    const u = newUser();
    await commitLocked(manifest, u, '/dir/a', file());
    await commitLocked(manifest, u, '/dir/sub/b', file());
    const third = await commitLocked(manifest, u, '/dirx', file());
    const deleted = await deleteLocked(manifest, u, '/dir', ['a', 'b']);
    assert.ok(deleted > third);
    const under = await manifest.entriesWithin(u, '/dir');
    assert.deepEqual([...under.keys()], ['/dir']);
    assert.equal((await manifest.governing(u, '/dir/sub/b'))?.kind, 'tombstone');
    assert.equal((await manifest.governing(u, '/dir/sub/b'))?.path, '/dir');
    assert.equal((await manifest.governing(u, '/dirx'))?.kind, 'file', '/dirx is not below /dir');
    await commitLocked(manifest, u, '/dir/sub/b', file(['c']));
    const after = await manifest.governing(u, '/dir/sub/b');
    assert.equal(after?.kind, 'file');
    assert.ok((after?.version ?? 0) > deleted);
    assert.equal((await manifest.governing(u, '/dir/other'))?.kind, 'tombstone');
  });

  it('never hands out a version again after Redis lost the counter (its last second, a restore)', async () => {
    const u = newUser();
    const before = await commitLocked(manifest, u, '/x', file());
    const tombstone = await deleteLocked(manifest, u, '/d', ['a']);
    await redisServer.redis.del(manifestKeys.version(u)); // the counter's recent increments are gone
    // A restart takes longer than a millisecond: wait until Redis's clock has moved past the lost versions.
    for (;;) {
      const [seconds, micros] = await redisServer.redis.time();
      if (Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) > tombstone) break;
    }
    const after = await commitLocked(manifest, u, '/d/y', file());
    assert.ok(after > tombstone && tombstone > before, `${after} > ${tombstone} > ${before}`);
    assert.equal(
      (await manifest.governing(u, '/d/y'))?.kind,
      'file',
      'the new write outranks the old delete',
    );
  });

  it('a root delete covers everything', async () => {
    const u = newUser();
    await commitLocked(manifest, u, '/a/b', file());
    await deleteLocked(manifest, u, '/', ['a']);
    assert.equal((await manifest.governing(u, '/a/b'))?.path, '/');
    assert.deepEqual([...(await manifest.entriesWithin(u)).keys()], ['/']);
  });

  it('adds or removes holders only while the version still governs', async () => {
    const u = newUser();
    const v1 = await commitLocked(manifest, u, '/f', file(['a']));
    assert.equal(await manifest.addHolder(u, '/f', v1, 'b'), true);
    assert.equal(await manifest.addHolder(u, '/f', v1, 'b'), true, 'idempotent');
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a', 'b']);
    const v2 = await commitLocked(manifest, u, '/f', file(['a']));
    assert.equal(await manifest.addHolder(u, '/f', v1, 'c'), false, 'stale version');
    assert.equal(await manifest.removeHolder(u, '/f', v2, 'a'), true);
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, []);
    const tomb = await deleteLocked(manifest, u, '/f', ['a']);
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

  it('held until a step of their holder ends: release() returns at once, the lock goes back after the step', async () => {
    const u = newUser();
    const lock = await manifest.lockPath(u, '/held', { ttlMs: 300 });
    let endStep = () => {};
    lock.holdUntil(new Promise<void>((resolve) => (endStep = resolve)));
    await lock.release();
    // Renewed meanwhile: past a whole TTL it is still there, and nobody else takes it.
    await assert.rejects(manifest.lockPath(u, '/held', { waitMs: 600 }), /still in progress/);
    assert.equal(await redisServer.redis.hexists(manifestKeys.locks(u), '/held'), 1);
    endStep();
    const next = await manifest.lockPath(u, '/held', { waitMs: 5_000 });
    assert.ok(next.fence > lock.fence);
    await next.release();
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

/** Resolves when signal aborts; rejects after deadlineMs. */
function aborted(signal: AbortSignal, deadlineMs: number): Promise<unknown> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return resolve(signal.reason);
    const timer = setTimeout(() => reject(new Error('the lock was never reported lost')), deadlineMs);
    signal.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve(signal.reason);
    });
  });
}

describe('fencing tokens', () => {
  it('increase with every lock taken on a user', async () => {
    const u = newUser();
    const first = await manifest.lockPath(u, '/f');
    await first.release();
    const second = await manifest.lockPath(u, '/g');
    assert.ok(second.fence > first.fence);
    await second.release();
  });

  it('refuse the commits of a holder paused past the TTL once a second holder took the lock', async () => {
    const u = newUser();
    const paused = await manifest.lockPath(u, '/f', { ttlMs: 150 });
    // The first holder "freezes": its renewal never runs (as under SIGSTOP) and the lock expires.
    await redisServer.redis.hset(
      manifestKeys.locks(u),
      '/f',
      JSON.stringify({ fence: paused.fence, exp: Date.now() - 1, owner: '' }),
    );
    const second = await manifest.lockPath(u, '/f', { waitMs: 1000 });
    await assert.rejects(manifest.commitWrite(u, '/f', file(['a']), paused), LockLostError);
    await assert.rejects(manifest.commitDelete(u, '/f', ['a'], paused), LockLostError);
    assert.equal(await manifest.entry(u, '/f'), undefined, 'the stale holder recorded nothing');
    await assert.rejects(paused.assertHeld(), LockLostError);
    const version = await manifest.commitWrite(u, '/f', file(['b']), second);
    assert.equal((await manifest.entry(u, '/f'))?.version, version);
    await second.release();
    await paused.release();
  });

  it('are never handed out twice, also after Redis went back to an older copy', async () => {
    const u = newUser();
    const before = await manifest.lockPath(u, '/f', { ttlMs: 60_000 });
    // Redis restarts from a copy taken before this lock: the lock and the counter's last step are gone.
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    await redisServer.redis.set(manifestKeys.fence(u), String(before.fence - 1));
    while (Date.now() <= before.fence) await new Promise((resolve) => setTimeout(resolve, 1));
    const after = await manifest.lockPath(u, '/f');
    assert.ok(after.fence > before.fence, `${after.fence} > ${before.fence}`);
    await assert.rejects(manifest.commitWrite(u, '/f', file(['a']), before), LockLostError);
    assert.equal(
      await manifest.entry(u, '/f'),
      undefined,
      'the holder from before the restore recorded nothing',
    );
    await after.release();
    await before.release();
  });

  it('are broken at once when they name this process but it does not hold them (a restored or unreleased lock)', async () => {
    const u = newUser();
    const mine = createManifest(redisServer.redis, { owner: 'gateway-under-test' });
    // Redis restored from an older copy: a lock this process released since is back, 30 s from expiring.
    await redisServer.redis.hset(
      manifestKeys.locks(u),
      '/f',
      JSON.stringify({ fence: 7, exp: Date.now() + 30_000, owner: 'gateway-under-test' }),
    );
    const lock = await mine.lockPath(u, '/f', { waitMs: 1000 });
    // A lock it does hold is never broken by itself.
    await assert.rejects(mine.lockPath(u, '/f', { waitMs: 300 }), LockTimeoutError);
    await lock.release();
  });

  it('refuse a commit after the lock expired, even if nobody took it', async () => {
    const u = newUser();
    const lock = await manifest.lockPath(u, '/f');
    await redisServer.redis.hset(
      manifestKeys.locks(u),
      '/f',
      JSON.stringify({ fence: lock.fence, exp: Date.now() - 1, owner: '' }),
    );
    await assert.rejects(manifest.commitWrite(u, '/f', file(), lock), LockLostError);
    await lock.release();
  });

  it('refuse a job that wrote bytes under a lost lock from recording itself as a holder', async () => {
    const u = newUser();
    const version = await commitLocked(manifest, u, '/f', file(['a']));
    const job = await manifest.lockPath(u, '/f');
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    await assert.rejects(manifest.addHolder(u, '/f', version, 'c', job), LockLostError);
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a']);
    await job.release();
  });

  it('abort the holder when a renewal finds the lock gone', async () => {
    const u = newUser();
    const lock = await manifest.lockPath(u, '/f', { ttlMs: 300 });
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    const reason = await aborted(lock.signal, 5_000);
    assert.ok(reason instanceof LockLostError);
    await lock.release();
  });
});

describe('locks of a dead process', () => {
  it('are broken at once when the process restarted (its name announced with a new nonce)', async () => {
    const u = newUser();
    const before = createProcessLiveness(redisServer.redis, `gw-${u}`);
    await before.start();
    const crashed = createManifest(redisServer.redis, { owner: before.owner });
    await crashed.lockPath(u, '/upload'); // killed mid-upload: never released
    const after = createProcessLiveness(redisServer.redis, `gw-${u}`);
    await after.start();
    const restarted = createManifest(redisServer.redis, { owner: after.owner });
    const lock = await restarted.lockPath(u, '/upload', { waitMs: 200 });
    await lock.release();
    await before.stop();
    await after.stop();
  });

  it('are broken when the process stopped announcing itself, and kept while it is alive', async () => {
    const u = newUser();
    const alive = createProcessLiveness(redisServer.redis, `rep-${u}`);
    await alive.start();
    const holder = createManifest(redisServer.redis, { owner: alive.owner });
    const held = await holder.lockPath(u, '/p');
    await assert.rejects(manifest.lockPath(u, '/p', { waitMs: 100 }), /still in progress/);
    await alive.stop(); // gone: no announcement any more
    const lock = await manifest.lockPath(u, '/p', { waitMs: 200 });
    await assert.rejects(holder.commitWrite(u, '/p', file(), held), LockLostError);
    await lock.release();
    await held.release();
  });
});

describe('write intents', () => {
  it('record the previous acknowledged entry and every touched backend, merged over a failed earlier write', async () => {
    const u = newUser();
    const v1 = await commitLocked(manifest, u, '/f', file(['a', 'b']));
    const first = await manifest.lockPath(u, '/f');
    const intent = await manifest.openIntent(u, first, ['a', 'b']);
    assert.equal(intent.previous?.version, v1);
    await manifest.touchIntent(u, first, 'd');
    await manifest.failIntent(u, first);
    assert.equal(await manifest.intentInFlight(u, (await manifest.intent(u, '/f')) as never), false);
    await first.release();
    const second = await manifest.lockPath(u, '/f');
    const merged = await manifest.openIntent(u, second, ['c']);
    assert.deepEqual([...merged.touched].sort(), ['a', 'b', 'c', 'd']);
    assert.equal(merged.previous?.version, v1, 'a failed write changes nothing acknowledged');
    assert.equal(await manifest.intentInFlight(u, merged), true);
    await manifest.commitWrite(u, '/f', file(['b', 'c']), second);
    assert.equal(await manifest.intent(u, '/f'), undefined, 'the commit resolves the intent');
    await second.release();
  });

  it('of a dead writer are no longer in flight, and are cleared only by a lock holder', async () => {
    const u = newUser();
    const writer = await manifest.lockPath(u, '/new');
    const intent = await manifest.openIntent(u, writer, ['a']);
    assert.equal(intent.previous, undefined);
    await redisServer.redis.hdel(manifestKeys.locks(u), '/new'); // the writer died and its lock was broken
    assert.equal(await manifest.intentInFlight(u, intent), false);
    await assert.rejects(manifest.clearIntent(u, writer, intent.fence), LockLostError);
    const healer = await manifest.lockPath(u, '/new');
    assert.equal(await manifest.clearIntent(u, healer, intent.fence), true);
    assert.deepEqual(await manifest.intents(u), []);
    await healer.release();
  });

  it('of a refused write lost with the tail are recorded again as failed, unless a newer change governs', async () => {
    const u = newUser();
    const v1 = await commitLocked(manifest, u, '/f', file(['a', 'b', 'c']));
    const writer = await manifest.lockPath(u, '/f');
    const opened = await manifest.openIntent(u, writer, ['b', 'c']);
    // Redis restored from a copy taken before the intent: the intent and the lock are gone.
    await redisServer.redis.hdel(manifestKeys.intents(u), '/f');
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    await assert.rejects(manifest.failIntent(u, writer), LockLostError);

    const recorded = await manifest.recordFailedIntent(u, opened, ['b', 'c']);
    assert.equal(recorded?.state, 'failed');
    assert.equal(recorded?.previous?.version, v1);
    assert.deepEqual(recorded?.touched, ['b', 'c']);
    assert.ok((recorded?.fence ?? 0) > opened.fence, 'a fresh fence');
    assert.deepEqual(await manifest.intent(u, '/f'), recorded);
    assert.equal(await manifest.intentInFlight(u, recorded as never), false, 'waits for the healer');
    assert.equal(await manifest.recordFailedIntent(u, opened, ['b']), undefined, 'an open intent is kept');

    // A newer writer's acknowledged write must never be rolled back.
    const healer = await manifest.lockPath(u, '/f');
    await manifest.clearIntent(u, healer, recorded?.fence ?? 0);
    await healer.release();
    await commitLocked(manifest, u, '/f', file(['a']));
    assert.equal(await manifest.recordFailedIntent(u, opened, ['b', 'c']), undefined);
    assert.equal(await manifest.intent(u, '/f'), undefined);
  });

  it('of a refused write are recorded again over an entry older than the one the write began over', async () => {
    const u = newUser();
    const v1 = await commitLocked(manifest, u, '/f', file(['a', 'b', 'c']));
    const older = await redisServer.redis.hget(manifestKeys.entries(u), '/f');
    await commitLocked(manifest, u, '/f', file(['a', 'b', 'c']));
    const writer = await manifest.lockPath(u, '/f');
    const opened = await manifest.openIntent(u, writer, ['b', 'c']);
    // Redis restored from a copy older still: the entry went back to v1, the intent and the lock are gone.
    await redisServer.redis.hset(manifestKeys.entries(u), '/f', older as string);
    await redisServer.redis.hdel(manifestKeys.intents(u), '/f');
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    const recorded = await manifest.recordFailedIntent(u, opened, ['b', 'c']);
    assert.equal(recorded?.state, 'failed');
    assert.equal(recorded?.previous?.version, opened.previous?.version, 'the entry the write began over');
    assert.ok((opened.previous?.version ?? 0) > v1);
    await writer.release();
  });

  it('of a refused write of a new path are recorded again only while the path has no entry', async () => {
    const u = newUser();
    const writer = await manifest.lockPath(u, '/new');
    const opened = await manifest.openIntent(u, writer, ['a', 'b']);
    await redisServer.redis.hdel(manifestKeys.intents(u), '/new');
    await writer.release();
    assert.equal(
      await manifest.recordFailedIntent(u, opened, []),
      undefined,
      'nothing touched: nothing to undo',
    );
    const recorded = await manifest.recordFailedIntent(u, opened, ['a', 'b']);
    assert.equal(recorded?.previous, undefined);
    assert.equal(recorded?.state, 'failed');
    const other = newUser();
    const later = await manifest.lockPath(other, '/new');
    const openedLater = await manifest.openIntent(other, later, ['a']);
    await redisServer.redis.hdel(manifestKeys.intents(other), '/new');
    await later.release();
    await commitLocked(manifest, other, '/new', file(['a', 'b']));
    assert.equal(await manifest.recordFailedIntent(other, openedLater, ['a']), undefined);
  });

  it('below a delete are dropped by the delete', async () => {
    const u = newUser();
    const writer = await manifest.lockPath(u, '/d/x');
    await manifest.openIntent(u, writer, ['a']);
    await writer.release();
    await deleteLocked(manifest, u, '/d', ['a', 'b']);
    assert.deepEqual(await manifest.intents(u), []);
  });
});

describe('a write in few round trips', () => {
  it('takes the lock and records the intent in one call, merged over a failed earlier write', async () => {
    const u = newUser();
    const v1 = await commitLocked(manifest, u, '/f', file(['a', 'b']));
    const earlier = await manifest.lockPath(u, '/f');
    await manifest.openIntent(u, earlier, ['d']);
    await manifest.failIntent(u, earlier);
    await earlier.release();
    const { lock, intent } = await manifest.lockPathForWrite(u, '/f', () => ['a', 'b']);
    assert.ok(lock.fence > earlier.fence);
    assert.equal(intent.fence, lock.fence, 'the intent carries the fence of the lock it was opened under');
    assert.equal(intent.previous?.version, v1);
    assert.deepEqual([...intent.touched].sort(), ['a', 'b', 'd']);
    assert.equal(intent.state, 'writing');
    assert.deepEqual(await manifest.intent(u, '/f'), intent);
    assert.equal(await manifest.intentInFlight(u, intent), true);
    await manifest.commitWrite(u, '/f', file(['a', 'b']), lock);
    assert.equal(await manifest.intent(u, '/f'), undefined);
    await lock.release();
  });

  it('records no intent while a related path is locked, and names the backends as they are once it gets the lock', async () => {
    const u = newUser();
    const parent = await manifest.lockPath(u, '/d');
    await assert.rejects(
      manifest.lockPathForWrite(u, '/d/f', () => ['a'], { waitMs: 50 }),
      /still in progress/,
    );
    assert.equal(await manifest.intent(u, '/d/f'), undefined, 'a blocked attempt wrote nothing');
    let asked = 0;
    const waiting = manifest.lockPathForWrite(u, '/d/f', () => (++asked === 1 ? ['a'] : ['b']), {
      waitMs: 5_000,
    });
    // The first attempt found the parent locked; release it so that a later attempt gets through.
    while (asked === 0) await new Promise((resolve) => setImmediate(resolve));
    await parent.release();
    const { lock, intent } = await waiting;
    assert.ok(asked >= 2);
    assert.deepEqual(intent.touched, ['b'], 'the backends named right before the attempt that took the lock');
    await lock.release();
  });

  it('takes nothing when naming the backends fails', async () => {
    const u = newUser();
    await assert.rejects(
      manifest.lockPathForWrite(u, '/f', () => {
        throw new Error('no room');
      }),
      /no room/,
    );
    const free = await manifest.lockPath(u, '/f', { waitMs: 50 });
    assert.equal(await manifest.intent(u, '/f'), undefined);
    await free.release();
  });

  it('sends the jobs and releases the lock in one round trip; a later release is a no-op', async () => {
    const u = newUser();
    const lock = await manifest.lockPath(u, '/f');
    const { answers, notReplicated } = await manifest.finishChange(lock, () => [
      redisServer.redis.hset(`test:${u}`, 'job', '1'),
      redisServer.redis.incr(`test:${u}:n`),
    ]);
    assert.deepEqual(answers, [
      [null, 1],
      [null, 1],
    ]);
    assert.equal(notReplicated, undefined, 'no replicas to wait for');
    assert.equal(await redisServer.redis.hget(manifestKeys.locks(u), '/f'), null, 'released');
    const next = await manifest.lockPath(u, '/f', { waitMs: 50 });
    await lock.release(); // must not remove the next holder's lock
    await next.assertHeld();
    await next.release();
  });

  it("writes the jobs, the wait and the release to Redis's socket in one write", async () => {
    const u = newUser();
    const redis = redisServer.redis;
    const lock = await manifest.lockPath(u, '/f');
    const socket = (redis as unknown as { stream: Writable & Record<string, unknown> }).stream;
    const writes: string[] = [];
    const original = { write: socket._write, writev: socket._writev };
    socket._write = function (this: Writable, ...args: unknown[]) {
      writes.push('write');
      return (original.write as (...a: unknown[]) => unknown).apply(this, args);
    };
    socket._writev = function (this: Writable, ...args: unknown[]) {
      writes.push('writev');
      return (original.writev as (...a: unknown[]) => unknown).apply(this, args);
    };
    try {
      await manifest.finishChange(lock, () => [
        redis.hset(`test:${u}`, 'job', '1'),
        redis.incr(`test:${u}:n`),
      ]);
    } finally {
      socket._write = original.write;
      socket._writev = original.writev;
    }
    assert.deepEqual(writes, ['writev'], 'two commands and the release in one write');
    assert.equal(await redis.hget(manifestKeys.locks(u), '/f'), null, 'released');
  });

  it("never releases a newer holder's lock, and says when the replicas did not confirm", async () => {
    const u = newUser();
    const waiting = createManifest(redisServer.redis, { replicaWait: { replicas: 1, timeoutMs: 20 } });
    const paused = await waiting.lockPath(u, '/f', { ttlMs: 150 });
    await redisServer.redis.hset(
      manifestKeys.locks(u),
      '/f',
      JSON.stringify({ fence: paused.fence, exp: Date.now() - 1, owner: '' }),
    );
    const newer = await manifest.lockPath(u, '/f', { waitMs: 1000 });
    const { answers, notReplicated } = await waiting.finishChange(paused, () => [
      redisServer.redis.set(`test:${u}`, 'x'),
    ]);
    assert.deepEqual(answers, [[null, 'OK']]);
    assert.ok(notReplicated instanceof NotReplicatedError, 'a Redis without replicas confirms nothing');
    await newer.assertHeld();
    await newer.release();
  });
});

describe('a job in few round trips', () => {
  it('takes the lock and reads the governing entry under it, of the path or of another one', async () => {
    const u = newUser();
    const version = await commitLocked(manifest, u, '/d/f', file(['a']));
    const { lock, governing } = await manifest.lockPathReading(u, '/d/f');
    assert.equal(governing?.version, version);
    await assert.rejects(manifest.lockPath(u, '/d', { waitMs: 50 }), /still in progress/, 'the lock is held');
    await lock.release();
    const s3 = await manifest.lockPathReading(u, 's3:/d/f', { read: '/d/f' });
    assert.equal(s3.lock.path, 's3:/d/f');
    assert.equal(s3.governing?.version, version);
    await s3.lock.release();
    const tombstone = await deleteLocked(manifest, u, '/d', ['a']);
    const after = await manifest.lockPathReading(u, '/d/f');
    assert.equal(after.governing?.kind, 'tombstone');
    assert.equal(after.governing?.version, tombstone);
    await after.lock.release();
  });

  it('reads only once it got the lock: a change made while it waited is seen', async () => {
    const u = newUser();
    const writer = await manifest.lockPath(u, '/f');
    const waiting = manifest.lockPathReading(u, '/f', { waitMs: 5_000 });
    const version = await manifest.commitWrite(u, '/f', file(['a']), writer);
    await writer.release();
    const { lock, governing } = await waiting;
    assert.equal(governing?.version, version);
    await lock.release();
  });

  it('adds a holder and releases in one batch, refused once the lock is lost', async () => {
    const u = newUser();
    const version = await commitLocked(manifest, u, '/f', file(['a']));
    const job = await manifest.lockPath(u, '/f');
    assert.equal(await manifest.addHolderAndRelease(u, '/f', version, 'c', job), true);
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a', 'c']);
    assert.equal(await redisServer.redis.hget(manifestKeys.locks(u), '/f'), null, 'released');
    const lost = await manifest.lockPath(u, '/f');
    await redisServer.redis.hdel(manifestKeys.locks(u), '/f');
    const newer = await manifest.lockPath(u, '/f');
    await assert.rejects(manifest.addHolderAndRelease(u, '/f', version, 'd', lost), LockLostError);
    assert.deepEqual((await manifest.entry(u, '/f'))?.holders, ['a', 'c']);
    await newer.assertHeld();
    await newer.release();
  });
});
