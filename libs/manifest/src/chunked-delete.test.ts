import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { isWithin } from '@cring/charm';
import { startScratchRedis } from '@cring/local-cluster';
import { encodeEntry, type ManifestEntry } from './entries.ts';
import { manifestKeys } from './keys.ts';
import { createManifest, type Manifest } from './manifest.ts';
import { commitLocked, deleteLocked } from './test-commits.ts';

const CHUNK = 25;
let redisServer: Awaited<ReturnType<typeof startScratchRedis>>;
let manifest: Manifest;
before(async () => {
  redisServer = await startScratchRedis();
  manifest = createManifest(redisServer.redis, { sweepChunkEntries: CHUNK });
});
after(async () => redisServer.stop());

let userCounter = 0;
const newUser = () => `chunked-${++userCounter}`;
const file = (holders = ['a', 'b']) => ({ sha256: 'cd'.repeat(32), size: 7, mode: 420, holders });

/** The raw entries hash, decoded for comparison. */
async function rawEntries(charmId: string): Promise<Map<string, unknown>> {
  const all = await redisServer.redis.hgetall(manifestKeys.entries(charmId));
  return new Map(Object.entries(all).map(([path, json]) => [path, JSON.parse(json)]));
}

async function scriptCalls(): Promise<number> {
  const info = await redisServer.redis.info('commandstats');
  return Number(/cmdstat_evalsha:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

/** A tree of `count` files below /big (some nested), its sibling /bigger, and files elsewhere. */
async function writeTree(charmId: string, count: number) {
  for (let i = 0; i < count; i++) {
    const path = i % 3 === 0 ? `/big/d${i % 7}/f${i}` : `/big/f${i}`;
    await commitLocked(manifest, charmId, path, file());
  }
  await commitLocked(manifest, charmId, '/bigger', file());
  await commitLocked(manifest, charmId, '/other/x', file());
}

describe('a recursive delete of a large tree, in chunks', () => {
  it('leaves the same state as removing every covered entry at once', async () => {
    const u = newUser();
    await writeTree(u, 600);
    const before = await rawEntries(u);
    const callsBefore = await scriptCalls();
    const version = await deleteLocked(manifest, u, '/big', ['a', 'b'], 1234);
    const calls = (await scriptCalls()) - callsBefore;

    // The one-step rule: every entry at or below /big goes, one tombstone takes its place.
    const expected = new Map([...before].filter(([path]) => !isWithin(path, '/big')));
    expected.set('/big', { k: 't', v: version, at: 1234, h: ['a', 'b'] });
    assert.deepEqual(await rawEntries(u), expected);
    assert.ok(
      [...before.values()].every((entry) => (entry as { v: number }).v < version),
      'the tombstone is newer than everything it covers',
    );
    assert.deepEqual(await redisServer.redis.hgetall(manifestKeys.sweeps(u)), {}, 'the sweep is finished');
    assert.ok(calls >= 600 / CHUNK, `${calls} scripts: each removes at most ${CHUNK} entries`);
    assert.equal((await manifest.governing(u, '/big/f1'))?.kind, 'tombstone');
    assert.equal((await manifest.governing(u, '/bigger'))?.kind, 'file');
  });

  it('keeps entries written below the tombstone after it, and a root delete covers everything', async () => {
    const u = newUser();
    await writeTree(u, 60);
    const first = await deleteLocked(manifest, u, '/big', ['a']);
    const rewritten = await commitLocked(manifest, u, '/big/f1', file(['c']));
    // A resumed sweep of the first delete (as after a crash) must not touch the newer file.
    await redisServer.redis.hset(manifestKeys.sweeps(u), '/big', String(first));
    assert.equal(await manifest.finishSweeps(u), 1);
    assert.equal((await manifest.entry(u, '/big/f1'))?.version, rewritten);
    const root = await deleteLocked(manifest, u, '/', ['a']);
    assert.deepEqual([...(await rawEntries(u)).keys()], ['/']);
    assert.equal((await manifest.governing(u, '/big/f1'))?.version, root);
  });
});

describe('a delete whose sweep was interrupted (the gateway died between chunks)', () => {
  /** The state such a crash leaves: the tombstone and its sweep recorded, covered entries still present. */
  async function interruptedDelete(charmId: string) {
    for (let i = 0; i < 40; i++) await commitLocked(manifest, charmId, `/dir/f${i}`, file());
    await commitLocked(manifest, charmId, '/dirx', file());
    const leftovers = await rawEntries(charmId);
    const version = await deleteLocked(manifest, charmId, '/dir', ['a']);
    // Put back what the sweep removed, as if it had stopped before its first chunk.
    const redis = redisServer.redis;
    for (const [path, value] of leftovers) {
      if (path.startsWith('/dir/'))
        await redis.hset(manifestKeys.entries(charmId), path, JSON.stringify(value));
    }
    await redis.hset(manifestKeys.sweeps(charmId), '/dir', String(version));
    return version;
  }

  it('hides the covered entries from every read', async () => {
    const u = newUser();
    const version = await interruptedDelete(u);
    assert.equal((await rawEntries(u)).size, 42, 'the leftovers are really there');
    assert.equal((await manifest.governing(u, '/dir/f3'))?.version, version);
    assert.equal(await manifest.entry(u, '/dir/f3'), undefined);
    assert.deepEqual([...(await manifest.entriesWithin(u)).keys()].sort(), ['/dir', '/dirx']);
    const route = await manifest.readRoute(u, '/dir/f3');
    assert.equal(route.governing?.kind, 'tombstone');
  });

  it('does not resurrect them when a file replaces the tombstone before the sweep resumes', async () => {
    const u = newUser();
    await interruptedDelete(u);
    await commitLocked(manifest, u, '/dir', file(['c']));
    assert.equal(await manifest.governing(u, '/dir/f3'), undefined, 'no file /dir/f3 exists any more');
    assert.deepEqual([...(await manifest.entriesWithin(u, '/dir')).keys()], ['/dir']);
    assert.equal(await manifest.finishSweeps(u), 1);
    assert.deepEqual([...(await rawEntries(u)).keys()].sort(), ['/dir', '/dirx']);
    assert.equal((await manifest.entry(u, '/dir'))?.kind, 'file');
    assert.deepEqual(await redisServer.redis.hgetall(manifestKeys.sweeps(u)), {});
  });

  it('leaves what finishSweeps sweeps the same as an uninterrupted delete', async () => {
    const crashed = newUser();
    const clean = newUser();
    await interruptedDelete(crashed);
    for (let i = 0; i < 40; i++) await commitLocked(manifest, clean, `/dir/f${i}`, file());
    await commitLocked(manifest, clean, '/dirx', file());
    await deleteLocked(manifest, clean, '/dir', ['a']);
    await manifest.finishSweeps(crashed);
    const shape = async (u: string) =>
      [...(await rawEntries(u))].map(([path, e]) => [path, (e as { k: string }).k]);
    assert.deepEqual(await shape(crashed), await shape(clean));
  });

  it('the sweep skips entries whose JSON is re-encoded with the version elsewhere', async () => {
    const u = newUser();
    const entry: ManifestEntry = {
      kind: 'file',
      version: 1,
      sha256: 'ee',
      size: 1,
      mode: 420,
      holders: [],
      atMs: 1,
    };
    // UPDATE_HOLDER re-encodes entries with cjson, in any key order: the version is found wherever it is.
    await redisServer.redis.hset(manifestKeys.entries(u), '/t/a', `{"h":[],"k":"f","at":1,"v":1}`);
    await redisServer.redis.hset(manifestKeys.entries(u), '/t/b', encodeEntry(entry));
    await redisServer.redis.set(manifestKeys.version(u), '1');
    await deleteLocked(manifest, u, '/t', ['a']);
    assert.deepEqual([...(await rawEntries(u)).keys()], ['/t']);
  });
});
