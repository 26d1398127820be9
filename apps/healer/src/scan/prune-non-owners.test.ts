import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '@cring/manifest';
import { fakeScanContext, sha256Of, userScanOf, worldOf } from './fake-scan-context.ts';
import { pruneNonOwnerCopies } from './prune-non-owners.ts';

const entry: FileEntry = {
  kind: 'file',
  version: 2,
  sha256: sha256Of('v2'),
  size: 2,
  mode: 420,
  holders: ['b1', 'b2', 'b3', 'b4'],
  atMs: 1_000,
};

describe('pruneNonOwnerCopies', () => {
  it('deletes a non-owner copy once every owner holds the version, hashed under the lock', async () => {
    const w = worldOf({ b1: { '/f': 'v2' }, b2: { '/f': 'v2' }, b3: { '/f': 'v2' }, b4: { '/f': 'v2' } });
    const ctx = fakeScanContext(w, { prune: true, governing: () => entry });
    await pruneNonOwnerCopies(ctx, userScanOf(w), '/f', entry, ['b4']);
    assert.deepEqual(w.calls, ['lock /f', 'removeHolder /f v2 b4', 'delete b4 /f']);
  });

  it('deletes nothing when an owner holds other bytes of the same size', async () => {
    const w = worldOf({ b1: { '/f': 'v2' }, b2: { '/f': 'xx' }, b3: { '/f': 'v2' }, b4: { '/f': 'v2' } });
    const ctx = fakeScanContext(w, { prune: true, governing: () => entry });
    await pruneNonOwnerCopies(ctx, userScanOf(w), '/f', entry, ['b4']);
    assert.deepEqual(w.calls, ['lock /f']);
    assert.equal(ctx.recorder.snapshot().findings[0]?.action, 'prune skipped');
  });

  it('deletes nothing when the version was replaced meanwhile', async () => {
    const w = worldOf({ b1: { '/f': 'v2' }, b2: { '/f': 'v2' }, b3: { '/f': 'v2' }, b4: { '/f': 'v2' } });
    const ctx = fakeScanContext(w, { prune: true, governing: () => ({ ...entry, version: 3 }) });
    await pruneNonOwnerCopies(ctx, userScanOf(w), '/f', entry, ['b4']);
    assert.deepEqual(w.calls, ['lock /f']);
  });
});
