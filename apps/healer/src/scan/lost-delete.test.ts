import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupVersion } from '@cring/backup-store';
import type { ManifestEntry } from '@cring/manifest';
import { fakeScanContext, fileEntryOf, sha256Of, userScanOf, worldOf } from './fake-scan-context.ts';
import { recoverLostDelete } from './lost-delete.ts';
import { listedCopies } from './path-copies.ts';

// The version Redis came back with (restored from a copy taken before the delete's tombstone commit).
const entry = { ...fileEntryOf('old', 500, 1_000), path: '/f' };
const marker = (storedAtMs: number): BackupVersion => ({
  path: '/f',
  versionId: 'marker',
  deleteMarker: true,
  isLatest: true,
  storedAt: new Date(storedAtMs),
  size: 0,
});
const backupOf = (storedAtMs: number): BackupVersion => ({
  path: '/f',
  versionId: 'backup',
  deleteMarker: false,
  isLatest: false,
  storedAt: new Date(storedAtMs),
  size: 3,
});

/** The world and scan of a path whose owners hold `held` (backend → bytes), judged by `entry`. */
function setUp(
  held: Record<string, string>,
  options: Parameters<typeof fakeScanContext>[1] = {},
  facts: Parameters<typeof userScanOf>[1] = {},
  /** null: no entry governs the path. */
  known: typeof entry | null = entry,
) {
  const judged = known ?? undefined;
  const backends: Record<string, Record<string, string>> = { b1: {}, b2: {}, b3: {} };
  for (const [name, bytes] of Object.entries(held)) backends[name] = { '/f': bytes };
  const world = worldOf(backends);
  const governing = (path: string): ManifestEntry | undefined => (path === '/f' ? judged : undefined);
  const ctx = fakeScanContext(world, { governing, ...options });
  const user = userScanOf(world, facts);
  const run = () => {
    const { copies, s3 } = listedCopies(user, '/f');
    return recoverLostDelete(ctx, user, '/f', judged, copies, s3);
  };
  return { world, ctx, user, run };
}

describe('recoverLostDelete (row L2)', () => {
  it('records the delete a marker newer than the entry proves, and deletes the copy a third owner kept', async () => {
    const { world, ctx, user, run } = setUp(
      { b3: 'old' },
      { history: () => [marker(2_000), backupOf(1_500)] },
      { modifiedMs: () => 900 },
    );
    assert.equal(await run(), true);
    const holders = user.preference.filter((name) => name !== 'b3').join(',');
    assert.deepEqual(world.calls, ['lock /f', `commitDelete /f ${holders} at 2000`]);
    assert.deepEqual(world.jobs, ['b3 delete /f v102'], 'P5 deletes the copy the tombstone covers');
    assert.equal(ctx.recorder.stats.lostDeletesRecovered, 1);
    const finding = ctx.recorder.snapshot().findings.find((f) => f.action.startsWith('delete recovered'));
    assert.equal(finding?.action, 'delete recovered as v102');
  });

  it('takes a marker over the backup of that very version as proof even when its time is not after the entry (clocks)', async () => {
    const { world, run } = setUp(
      {},
      {
        history: () => [marker(900), backupOf(950)],
        backup: (_path, versionId) =>
          versionId === 'backup' ? { path: '/f', size: 3, sha256: entry.sha256, version: 500 } : undefined,
      },
    );
    assert.equal(await run(), true);
    assert.equal(world.calls[1]?.startsWith('commitDelete /f '), true, world.calls.join('; '));
    assert.deepEqual(world.jobs, []);
  });

  it('changes nothing when the marker is older than the entry and covers an older backup (a delete before this write)', async () => {
    const { world, ctx, run } = setUp(
      {},
      {
        history: () => [marker(900), backupOf(800)],
        backup: (_path, versionId) =>
          versionId === 'backup'
            ? { path: '/f', size: 3, sha256: sha256Of('older'), version: 400 }
            : undefined,
      },
    );
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
    assert.equal(ctx.recorder.stats.lostDeletesRecovered, 0);
  });

  it('changes nothing without a delete marker: two owners missing a file look like two lost disks', async () => {
    const { world, run } = setUp({ b3: 'old' }, { history: () => [] });
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
    assert.deepEqual(world.jobs, []);
  });

  it('changes nothing when the bucket cannot be listed, or fails reading the history', async () => {
    const unlisted = setUp(
      {},
      { history: () => [marker(2_000)] },
      { s3: { state: 'unreachable', reason: 'down' } },
    );
    assert.equal(await unlisted.run(), false);
    assert.deepEqual(unlisted.world.calls, []);
    const failing = setUp({}, { history: () => new Error('connect ECONNREFUSED') });
    assert.equal(await failing.run(), false);
    assert.deepEqual(failing.world.calls, []);
  });

  it('leaves a version a majority of owners still holds alone (a committed delete removed it from a quorum)', async () => {
    const { world, run } = setUp({ b1: 'old', b2: 'old' }, { history: () => [marker(2_000)] });
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
  });

  it('counts a backend it could not list as holding the version (the marker may be a stale delete job of an older tombstone)', async () => {
    const { world, run } = setUp(
      { b2: 'old', b3: 'old' },
      { history: () => [marker(2_000)] },
      { unreachable: ['b2'] },
    );
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
  });

  it('leaves a copy written after the delete to L1 and F3 (a later write, acknowledged or refused)', async () => {
    const { world, run } = setUp(
      { b2: 'newer!' },
      { history: () => [marker(2_000)] },
      { modifiedMs: () => 2_500 },
    );
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
  });

  it('reports what it would do in a dry run and changes nothing', async () => {
    const { world, ctx, run } = setUp({ b3: 'old' }, { dryRun: true, history: () => [marker(2_000)] });
    assert.equal(await run(), true);
    assert.deepEqual(world.calls, []);
    assert.deepEqual(world.jobs, []);
    assert.equal(ctx.recorder.snapshot().findings[0]?.action, 'would record the delete');
  });

  it('leaves the path to the pipeline when the entry changed before the lock was taken', async () => {
    const { world, ctx, run } = setUp(
      {},
      { history: () => [marker(2_000)], governing: () => ({ ...entry, version: 600 }) },
    );
    assert.equal(await run(), true);
    assert.deepEqual(world.calls, ['lock /f']);
    assert.equal(ctx.recorder.stats.recent, 1);
  });

  // No entry: a file written after the copy Redis came back from, then deleted with its directory.
  const deletedBackup = (sha256: string) => (_path: string, versionId?: string) =>
    versionId === 'backup' ? { path: '/f', size: 3, sha256, version: 700 } : undefined;

  it('records the delete of a file the manifest never knew when the marker covers a backup of the bytes every copy holds', async () => {
    const { world, ctx, user, run } = setUp(
      { b3: 'new' },
      { history: () => [marker(2_000), backupOf(1_500)], backup: deletedBackup(sha256Of('new')) },
      { modifiedMs: () => 1_400 },
      null,
    );
    assert.equal(await run(), true);
    const holders = user.preference.filter((name) => name !== 'b3').join(',');
    assert.deepEqual(world.calls, ['lock /f', `commitDelete /f ${holders} at 2000`]);
    assert.deepEqual(
      world.jobs,
      ['b3 delete /f v102'],
      'instead of P4 adopting the copy that missed the delete',
    );
    assert.equal(ctx.recorder.stats.lostDeletesRecovered, 1);
  });

  it('leaves a file the manifest never knew to P4 when a copy holds other bytes than the deleted backup', async () => {
    const { world, run } = setUp(
      { b2: 'new', b3: 'odd' },
      { history: () => [marker(2_000), backupOf(1_500)], backup: deletedBackup(sha256Of('new')) },
      {},
      null,
    );
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, ['lock /f'], 'hashed under the lock, then nothing');
    assert.deepEqual(world.jobs, []);
  });

  it('leaves a file the manifest never knew to P4 when the marker covers no backup', async () => {
    const { world, run } = setUp({ b3: 'new' }, { history: () => [marker(2_000)] }, {}, null);
    assert.equal(await run(), false);
    assert.deepEqual(world.calls, []);
  });
});
