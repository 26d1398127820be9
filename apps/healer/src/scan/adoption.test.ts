import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adoptUnknownPath } from './adoption.ts';
import { fakeScanContext, sha256Of, userScanOf, worldOf } from './fake-scan-context.ts';
import { listedCopies } from './path-copies.ts';

describe('adoptUnknownPath', () => {
  it('records the bytes most owners hold as a new version and repairs the owner that lacks them', async () => {
    const w = worldOf({ b1: { '/f': 'aa' }, b2: { '/f': 'aa' }, b3: { '/f': 'b' } });
    const ctx = fakeScanContext(w, { governing: () => undefined });
    const user = userScanOf(w, { s3: { state: 'unreachable', reason: 'stopped' } });
    const { copies, s3 } = listedCopies(user, '/f');
    await adoptUnknownPath(ctx, user, '/f', copies, s3);
    assert.deepEqual(w.calls, ['lock /f', `commitWrite /f ${sha256Of('aa').slice(0, 8)} b1,b2`]);
    assert.deepEqual(w.jobs, ['b3 replicate /f v101']);
    assert.equal(ctx.recorder.stats.disagreements, 1);
  });

  it('adopts nothing at a path with an open write intent, nor what only the bucket holds', async () => {
    const w = worldOf({ b1: { '/f': 'aa' }, b2: {}, b3: {} });
    const ctx = fakeScanContext(w, { governing: () => undefined });
    const user = userScanOf(w, { s3: { state: 'listed', objects: new Map([['/g', { size: 1 }]]) } });
    user.openIntents.add('/f');
    for (const path of ['/f', '/g']) {
      const { copies, s3 } = listedCopies(user, path);
      await adoptUnknownPath(ctx, user, path, copies, s3);
    }
    assert.deepEqual(w.calls, []);
    assert.deepEqual(w.jobs, []);
    assert.equal(ctx.recorder.stats.s3Only, 1);
  });
});
