import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '@cring/manifest';
import { fakeScanContext, sha256Of, userScanOf, worldOf } from './fake-scan-context.ts';
import { recoverLostWrite } from './lost-write.ts';
import { listedCopies } from './path-copies.ts';

// The manifest names v1 ('old'); b1 and b2 hold newer bytes written after it: a lost write, or a refusal the
// gateway has not put back on record yet.
const v1: FileEntry = {
  kind: 'file',
  version: 1,
  sha256: sha256Of('old'),
  size: 3,
  mode: 420,
  holders: ['b1', 'b2', 'b3'],
  atMs: 1_000,
};

async function scanWithNewerCopiesAged(ageMs: number, v1CopyAgeMs = 10 * 60_000) {
  const world = worldOf({ b1: { '/f': 'newer' }, b2: { '/f': 'newer' }, b3: { '/f': 'old' } });
  const ctx = fakeScanContext(world, { governing: () => v1 });
  const writtenMs = Date.now() - ageMs;
  const user = userScanOf(world, { modifiedMs: (b) => (b === 'b3' ? Date.now() - v1CopyAgeMs : writtenMs) });
  const { copies, s3 } = listedCopies(user, '/f');
  const handled = await recoverLostWrite(ctx, user, '/f', { ...v1, path: '/f' }, copies, s3);
  return { world, ctx, user, handled };
}

describe('recoverLostWrite (row L1)', () => {
  it('commits newer bytes a quorum holds once they are older than the grace', async () => {
    const { world, ctx, handled } = await scanWithNewerCopiesAged(2 * 60_000);
    assert.equal(handled, true);
    assert.deepEqual(world.calls.slice(0, 2), [
      'lock /f',
      `commitWrite /f ${sha256Of('newer').slice(0, 8)} b1,b2`,
    ]);
    assert.equal(ctx.recorder.stats.lostWritesRecovered, 1);
  });

  it('leaves newer bytes younger than the grace to a later scan: they may be a refusal not on record yet', async () => {
    const { world, ctx, user, handled } = await scanWithNewerCopiesAged(5_000);
    assert.equal(handled, true, 'handled here: neither F3 nor P5 acts on them in this scan');
    assert.deepEqual(world.calls, ['lock /f'], 'hashed under the lock, not committed');
    assert.deepEqual(world.jobs, []);
    assert.equal(ctx.recorder.stats.lostWritesRecovered, 0);
    assert.equal(ctx.recorder.stats.recent, 1);
    assert.equal(user.recent, 1);
  });

  it('a young copy of the version the manifest names does not hold back an old lost write', async () => {
    // b3's copy of v1 was just written (a replica, a repair): it is not among the bytes adopted.
    const { world, ctx } = await scanWithNewerCopiesAged(2 * 60_000, 1_000);
    assert.equal(world.calls[1], `commitWrite /f ${sha256Of('newer').slice(0, 8)} b1,b2`);
    assert.equal(ctx.recorder.stats.recent, 0);
  });
});
