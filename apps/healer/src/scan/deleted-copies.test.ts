import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { removeDeletedCopies } from './deleted-copies.ts';
import { CHARM_ID, fakeScanContext, userScanOf, worldOf } from './fake-scan-context.ts';
import { listedCopies } from './path-copies.ts';

const tombstone = { kind: 'tombstone' as const, version: 4, holders: ['b1'], atMs: 1_000, path: '/dir' };

describe('removeDeletedCopies', () => {
  it('asks every target holding a covered copy for the tombstone delete, once per target', async () => {
    const world = worldOf({ b1: {}, b2: { '/dir/a': 'x', '/dir/b': 'y' }, b3: { '/dir/a': 'x' } });
    const ctx = fakeScanContext(world);
    const user = userScanOf(world, { s3: { state: 'listed', objects: new Map([['/dir/a', { size: 1 }]]) } });
    for (const path of ['/dir/a', '/dir/b']) {
      const { copies, s3 } = listedCopies(user, path);
      await removeDeletedCopies(ctx, user, path, tombstone, copies, s3);
    }
    assert.deepEqual(world.jobs, ['b2 delete /dir v4', 'b3 delete /dir v4', 's3 delete /dir v4']);
    assert.equal(ctx.recorder.stats.deletedCopies, 4);
    assert.deepEqual(world.calls, [], 'nothing is deleted by the scan itself');
  });

  it('tracks a delete job that is still live instead of enqueueing another', async () => {
    const world = worldOf({ b1: { '/dir/a': 'x' }, b2: {}, b3: {} });
    const ctx = fakeScanContext(world);
    const live = [`delete-${CHARM_ID}-40`, `delete-${CHARM_ID}-4-heal-earlier`]; // another version's, and this one's
    const user = userScanOf(world, { alive: new Map([['b1', live]]) });
    const { copies, s3 } = listedCopies(user, '/dir/a');
    await removeDeletedCopies(ctx, user, '/dir/a', tombstone, copies, s3);
    assert.deepEqual(world.jobs, []);
    assert.equal(ctx.recorder.stats.repairsAlreadyQueued, 1);
  });
});
