import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileEntry } from '@cring/manifest';
import { fakeScanContext, sha256Of, userScanOf, worldOf } from './fake-scan-context.ts';
import { checkKnownFile } from './known-file.ts';
import { listedCopies } from './path-copies.ts';

const V1 = 'old-1';
const V2 = 'new-2'; // same size as V1: only a deep scan tells them apart

const entry: FileEntry = {
  kind: 'file',
  version: 1,
  sha256: sha256Of(V1),
  size: V1.length,
  mode: 420,
  holders: ['b1', 'b2', 'b3'],
  atMs: 1_000,
};

async function scanOnce(world: ReturnType<typeof worldOf>, deep: boolean, modifiedMs: (b: string) => number) {
  const ctx = fakeScanContext(world, { deep, governing: () => entry });
  const user = userScanOf(world, { modifiedMs, s3: { state: 'unreachable', reason: 'stopped' } });
  const { copies, s3 } = listedCopies(user, '/f');
  await checkKnownFile(ctx, user, '/f', entry, copies, s3);
  return ctx;
}

describe('checkKnownFile', () => {
  it('replicates the version over a lone wrong copy found by a deep scan', async () => {
    const world = worldOf({ b1: { '/f': V2 }, b2: { '/f': V1 }, b3: { '/f': V1 } });
    const ctx = await scanOnce(world, true, (b) => (b === 'b1' ? 5_000 : 500));
    assert.deepEqual(world.jobs, ['b1 replicate /f v1']);
    assert.equal(ctx.recorder.stats.hashMismatched, 1);
  });

  it('keeps newer bytes most owners hold in a deep scan too: the mtimes survive the hashing', async () => {
    // The manifest lost v2 (acknowledged on b1 and b2 after v1 was committed): v1 must not be copied over it.
    const world = worldOf({ b1: { '/f': V2 }, b2: { '/f': V2 }, b3: { '/f': V1 } });
    const ctx = await scanOnce(world, true, (b) => (b === 'b3' ? 500 : 5_000));
    assert.deepEqual(world.jobs, []);
    const kept = ctx.recorder.snapshot().findings.filter((f) => f.action.startsWith('kept'));
    assert.deepEqual(
      kept.map((f) => f.target),
      ['b1', 'b2'],
    );
  });

  it('a shallow scan sees same-size copies as matching and asks for nothing', async () => {
    const world = worldOf({ b1: { '/f': V2 }, b2: { '/f': V2 }, b3: { '/f': V1 } });
    const ctx = await scanOnce(world, false, () => 5_000);
    assert.deepEqual(world.jobs, []);
    assert.deepEqual(ctx.recorder.snapshot().findings, []);
  });
});
