import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newUser, sameKeyClient } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { kvSetSeenBy } from '../harness/kv.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';

describe('the replicated pipeline, with the real charm CLI through the gateway', () => {
  it('fs and kv commands work, and every owner and S3 end byte-identical', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'alice');
    const work = join(cluster.topology().runDir, 'work');
    mkdirSync(join(work, 'album', 'nested'), { recursive: true });
    writeFileSync(join(work, 'note.txt'), 'a note\n');
    writeFileSync(join(work, 'album', 'one.bin'), randomBytes(200_000));
    writeFileSync(join(work, 'album', 'nested', 'two.txt'), 'two\n');
    writeFileSync(join(work, 'gone.txt'), 'to be deleted\n');

    await charm.run(['fs', 'cp', join(work, 'note.txt'), 'charm:/note.txt']);
    await charm.run(['fs', 'cp', '-r', join(work, 'album'), 'charm:/photos']);
    await charm.run(['fs', 'cp', join(work, 'gone.txt'), 'charm:/gone.txt']);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/note.txt'])).stdout, 'a note\n');
    assert.equal((await charm.run(['fs', 'cat', 'charm:/photos/album/nested/two.txt'])).stdout, 'two\n');
    const ls = (await charm.run(['fs', 'ls', 'charm:/'])).stdout;
    for (const name of ['note.txt', 'photos', 'gone.txt']) assert.match(ls, new RegExp(name));
    const tree = (await charm.run(['fs', 'tree', 'charm:/photos'])).stdout;
    assert.match(tree, /album\/nested\/two\.txt/);
    assert.match(tree, /album\/one\.bin/);
    await charm.run(['fs', 'rm', 'charm:/gone.txt']);
    assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /gone\.txt/);

    await charm.run(['kv', 'set', 'colour', 'teal']);
    const list = (await charm.run(['kv', 'list'])).stdout;
    assert.match(list, /colour\tteal|colour\s+teal/);

    // A second device holding the same key sees the same files and, after a sync, the same kv data both ways.
    const laptop = sameKeyClient(cluster, 'alice', 'laptop');
    assert.equal((await laptop.run(['fs', 'cat', 'charm:/note.txt'])).stdout, 'a note\n');
    await kvSetSeenBy(charm, [laptop], 'shape', 'round');
    await kvSetSeenBy(laptop, [charm], 'size', 'large');

    await state.waitForDrain(charmId);
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.ok(reference.size >= 6, `expected the files and kv backups, got ${[...reference.keys()]}`);
    for (let i = 1; i < cluster.backends.length; i++) {
      assert.deepEqual(filesOnBackend(cluster, i, charmId), reference, `backend ${i + 1} is identical`);
    }
    assert.deepEqual(await objectsInS3(cluster, charmId), reference, 'S3 holds the same bytes');
    // The deleted file is gone everywhere (its encrypted name is the only path that disappeared).
    const entries = await state.manifest.entriesWithin(charmId);
    const tombstones = [...entries].filter(([, e]) => e.kind === 'tombstone').map(([path]) => path);
    assert.equal(tombstones.length, 1);
    for (const path of tombstones) {
      assert.ok(!reference.has(path as string));
      assert.ok(!(await objectsInS3(cluster, charmId)).has(path as string));
    }
    // Every live manifest entry names the bytes every backend holds.
    for (const [path, entry] of entries) {
      if (entry.kind === 'file') assert.equal(reference.get(path), entry.sha256, `sha256 of ${path}`);
    }
  });
});
