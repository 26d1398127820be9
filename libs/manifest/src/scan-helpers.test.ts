import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startScratchRedis as startTestRedis } from '@cring/local-cluster';
import { governingIn } from './entries.ts';
import { createManifest, type Manifest } from './manifest.ts';
import { commitLocked, deleteLocked } from './test-commits.ts';

let redisServer: Awaited<ReturnType<typeof startTestRedis>>;
let manifest: Manifest;
before(async () => {
  redisServer = await startTestRedis();
  manifest = createManifest(redisServer.redis);
});
after(async () => redisServer.stop());

let userCounter = 0;
const newUser = () => `scan-user-${++userCounter}`;
const file = (holders = ['a']) => ({ sha256: 'cd'.repeat(32), size: 3, mode: 420, holders });

describe('governingIn (a snapshot of entries)', () => {
  it('decides exactly as governing() does in Redis', async () => {
    const u = newUser();
    await commitLocked(manifest, u, '/dir/a', file());
    await commitLocked(manifest, u, '/dir/sub/b', file());
    await commitLocked(manifest, u, '/dirx', file());
    await commitLocked(manifest, u, '/top', file());
    await deleteLocked(manifest, u, '/dir', ['a']);
    await commitLocked(manifest, u, '/dir/sub/b', file(['b']));
    await deleteLocked(manifest, u, '/top/below', ['a']);
    const snapshot = await manifest.entriesWithin(u);
    const paths = [
      '/',
      '/dir',
      '/dir/a',
      '/dir/sub',
      '/dir/sub/b',
      '/dir/sub/c',
      '/dirx',
      '/top',
      '/top/below/x',
    ];
    for (const path of paths) {
      assert.deepEqual(governingIn(snapshot, path), await manifest.governing(u, path), path);
    }
    assert.equal(governingIn(snapshot, '/dir/a')?.kind, 'tombstone');
    assert.equal(governingIn(snapshot, '/dir/sub/b')?.kind, 'file');
    assert.equal(
      governingIn(snapshot, '/top/below/x')?.path,
      '/top/below',
      'a file entry above is not a tombstone',
    );
    assert.equal(governingIn(snapshot, '/nothing'), undefined);
    assert.equal(governingIn(new Map(), '/'), undefined);
  });
});

describe('removeTombstone', () => {
  it('removes a tombstone only while it is still that version', async () => {
    const u = newUser();
    await commitLocked(manifest, u, '/f', file());
    const deleted = await deleteLocked(manifest, u, '/f', ['a']);
    assert.equal(await manifest.removeTombstone(u, '/f', deleted - 1), false, 'older version');
    assert.equal(await manifest.removeTombstone(u, '/f', deleted), true);
    assert.equal(await manifest.entry(u, '/f'), undefined);
    assert.equal(await manifest.removeTombstone(u, '/f', deleted), false, 'already gone');
  });

  it('never removes a file entry, nor a tombstone a newer delete replaced', async () => {
    const u = newUser();
    const written = await commitLocked(manifest, u, '/g', file());
    assert.equal(await manifest.removeTombstone(u, '/g', written), false);
    assert.equal((await manifest.entry(u, '/g'))?.kind, 'file');
    const first = await deleteLocked(manifest, u, '/g', ['a']);
    const second = await deleteLocked(manifest, u, '/g', ['a']);
    assert.equal(await manifest.removeTombstone(u, '/g', first), false);
    assert.equal((await manifest.entry(u, '/g'))?.version, second);
  });
});

describe('latestVersion', () => {
  it('is 0 before the first change, then the version of the last one', async () => {
    const u = newUser();
    assert.equal(await manifest.latestVersion(u), 0);
    await commitLocked(manifest, u, '/a', file());
    const deleted = await deleteLocked(manifest, u, '/a', ['a']);
    assert.equal(await manifest.latestVersion(u), deleted);
  });
});
