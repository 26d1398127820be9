import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState } from '../harness/replicas.ts';

describe('read-only from the S3 backup', () => {
  it('with every backend stopped, fs cat and fs ls still work and fs cp fails cleanly', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'frank');
    const work = join(cluster.topology().runDir, 'work');
    mkdirSync(join(work, 'notes'), { recursive: true });
    writeFileSync(join(work, 'notes', 'monday.txt'), 'monday\n');
    writeFileSync(join(work, 'notes', 'tuesday.txt'), 'tuesday\n');
    writeFileSync(join(work, 'top.txt'), 'top\n');
    await charm.run(['fs', 'cp', '-r', join(work, 'notes'), 'charm:/']);
    await charm.run(['fs', 'cp', join(work, 'top.txt'), 'charm:/top.txt']);
    await state.waitForDrain(charmId);
    const listingBefore = (await charm.run(['fs', 'ls', 'charm:/notes'])).stdout;

    await Promise.all(cluster.backends.map((b) => b.process.stop()));
    assert.equal((await charm.run(['fs', 'cat', 'charm:/top.txt'])).stdout, 'top\n');
    assert.equal((await charm.run(['fs', 'cat', 'charm:/notes/tuesday.txt'])).stdout, 'tuesday\n');
    const listing = (await charm.run(['fs', 'ls', 'charm:/notes'])).stdout;
    // Same names and modes as before (times and directory sizes come from S3).
    const names = (text: string) =>
      text
        .trim()
        .split('\n')
        .map((line) => line.trim().split(/\s+/).pop())
        .sort();
    assert.deepEqual(names(listing), names(listingBefore));
    assert.match(
      (await charm.run(['fs', 'ls', 'charm:/'])).stdout,
      /notes[\s\S]*top\.txt|top\.txt[\s\S]*notes/,
    );

    writeFileSync(join(work, 'new.txt'), 'new\n');
    const write = await charm.attempt(['fs', 'cp', join(work, 'new.txt'), 'charm:/new.txt']);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr + write.stdout, /read-only/);
  });
});
