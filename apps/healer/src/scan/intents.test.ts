import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WriteIntent } from '@cring/manifest';
import { CHARM_ID, fakeScanContext, fileEntryOf, sha256Of, worldOf } from './fake-scan-context.ts';
import { resolveAbandonedIntents } from './intents.ts';

const intentAt = (path: string, touched: string[], previous?: WriteIntent['previous']): WriteIntent => ({
  path,
  fence: 7,
  atMs: 1_000,
  owner: 'gateway-1',
  state: 'writing',
  touched,
  ...(previous ? { previous } : {}),
});

/** The bucket's delete marker of path, the current entry of its key. */
const markerAt = (path: string, storedAtMs: number) => ({
  path,
  versionId: 'marker',
  deleteMarker: true,
  isLatest: true,
  storedAt: new Date(storedAtMs),
  size: 0,
});

// The acknowledged version the write began over: 'old' on all three owners.
const oldVersion = fileEntryOf('old', 500, 400);

describe('resolveAbandonedIntents', () => {
  it('leaves an intent whose writer still holds the lock open and untouched', async () => {
    const w = worldOf({ b1: { '/new': 'half' }, b2: {}, b3: {} });
    const ctx = fakeScanContext(w, { intents: [intentAt('/new', ['b1'])], inFlight: new Set(['/new']) });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], ['/new']);
    assert.deepEqual(w.calls, []);
  });

  it('rolls back an abandoned write of a new path on every backend it touched, then clears the intent', async () => {
    const w = worldOf({ b1: { '/new': 'half' }, b2: { '/new': 'half' }, b3: {} });
    const ctx = fakeScanContext(w, { intents: [intentAt('/new', ['b1', 'b2', 'b3'])] });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    assert.deepEqual(w.calls, ['lock /new', 'delete b1 /new', 'delete b2 /new', 'clearIntent fence 7']);
    assert.equal(ctx.recorder.stats.writesRolledBack, 1);
  });

  it('keeps the intent open, and the path out of adoption, when a touched backend cannot be put back', async () => {
    const w = worldOf({ b1: { '/new': 'half' }, b2: {}, b3: {} });
    const ctx = fakeScanContext(w, { intents: [intentAt('/new', ['b1', 'gone'])] });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], ['/new']);
    assert.deepEqual(w.calls, ['lock /new', 'delete b1 /new']);
    assert.equal(ctx.recorder.stats.intentsLeftOpen, 1);
  });

  // Redis restored from a copy taken after the intent was opened but before its commit (row I4).
  it('commits again, instead of rolling back, a write an untouched owner proves committed (its replicate job ran)', async () => {
    const w = worldOf({ b1: { '/f': 'new' }, b2: { '/f': 'new' }, b3: { '/f': 'new' } });
    const touched = ['b2', 'b3'];
    const ctx = fakeScanContext(w, { intents: [intentAt('/f', touched, oldVersion)] });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    const holders = ctx.ring.preferenceList(CHARM_ID, 3).join(',');
    assert.deepEqual(w.calls, ['lock /f', `commitWrite /f ${sha256Of('new').slice(0, 8)} ${holders}`]);
    assert.equal(w.backends.get('b2')?.get('/f'), 'new', 'the acknowledged bytes stay');
    assert.equal(ctx.recorder.stats.lostWritesRecovered, 1);
    assert.equal(ctx.recorder.stats.writesRolledBack, 0);
  });

  it("commits again a write whose backup, taken after the intent, holds the touched backends' bytes", async () => {
    const w = worldOf({ b1: { '/f': 'old' }, b2: { '/f': 'new' }, b3: { '/f': 'new' } });
    const ctx = fakeScanContext(w, {
      intents: [intentAt('/f', ['b2', 'b3'], oldVersion)],
      backup: () => ({ path: '/f', size: 3, sha256: sha256Of('new'), version: 1_001 }),
    });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    const holders = ctx.ring
      .preferenceList(CHARM_ID, 3)
      .filter((name) => name !== 'b1')
      .join(',');
    assert.deepEqual(w.calls, ['lock /f', `commitWrite /f ${sha256Of('new').slice(0, 8)} ${holders}`]);
    assert.equal(w.backends.get('b1')?.get('/f'), 'old', 'left to F4 to replicate');
  });

  it('rolls back when nothing proves a commit: the untouched owner holds the previous version, the backup predates the intent', async () => {
    const w = worldOf({ b1: { '/f': 'old' }, b2: { '/f': 'new' }, b3: { '/f': 'new' } });
    const ctx = fakeScanContext(w, {
      intents: [intentAt('/f', ['b2', 'b3'], oldVersion)],
      backup: () => ({ path: '/f', size: 3, sha256: sha256Of('new'), version: 999 }),
    });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    assert.deepEqual(w.calls, ['lock /f', 'put b2 /f', 'put b3 /f', 'clearIntent fence 7']);
    assert.equal(w.backends.get('b3')?.get('/f'), 'old');
    assert.equal(ctx.recorder.stats.writesRolledBack, 1);
  });

  it('does not take bytes on the untouched owner that no touched backend has for a commit', async () => {
    const w = worldOf({ b1: { '/f': 'other' }, b2: { '/f': 'new' }, b3: { '/f': 'new' } });
    const ctx = fakeScanContext(w, { intents: [intentAt('/f', ['b2', 'b3'], oldVersion)] });
    await resolveAbandonedIntents(ctx, CHARM_ID);
    assert.deepEqual(
      w.calls.filter((call) => call.startsWith('commitWrite')),
      [],
    );
    assert.equal(ctx.recorder.stats.lostWritesRecovered, 0);
  });

  it('in a dry run, reports the commit it would recover and changes nothing', async () => {
    const w = worldOf({ b1: { '/f': 'new' }, b2: { '/f': 'new' }, b3: { '/f': 'new' } });
    const ctx = fakeScanContext(w, { dryRun: true, intents: [intentAt('/f', ['b2', 'b3'], oldVersion)] });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], ['/f']);
    assert.deepEqual(w.calls, []);
    assert.equal(ctx.recorder.snapshot().findings[0]?.action, 'would recover as a new version');
  });

  // Redis restored from before an acknowledged write's commit; then a refused write opened its intent over the stale entry.
  it('rolls a refused write back to the newer acknowledged version the bucket proves, then records that version', async () => {
    const w = worldOf({ b1: { '/f': 'ack' }, b2: { '/f': 'refused' }, b3: { '/f': 'refused' } });
    const ctx = fakeScanContext(w, {
      intents: [{ ...intentAt('/f', ['b2', 'b3'], oldVersion), state: 'failed' }],
      backup: () => ({ path: '/f', size: 3, sha256: sha256Of('ack'), version: 800 }),
    });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    assert.deepEqual(w.calls, [
      'lock /f',
      'put b2 /f',
      'put b3 /f',
      `commitWrite /f ${sha256Of('ack').slice(0, 8)} b1,b2,b3`,
    ]);
    assert.equal(w.backends.get('b2')?.get('/f'), 'ack');
    assert.equal(ctx.recorder.stats.lostWritesRecovered, 1);
  });

  it('never rolls a write still writing back to a newer version: it may be the newest acknowledged one, its commit lost', async () => {
    const w = worldOf({ b1: { '/f': 'ack' }, b2: { '/f': 'newest' }, b3: { '/f': 'newest' } });
    const ctx = fakeScanContext(w, {
      intents: [intentAt('/f', ['b2', 'b3'], oldVersion)],
      backup: () => ({ path: '/f', size: 3, sha256: sha256Of('ack'), version: 800 }),
    });
    await resolveAbandonedIntents(ctx, CHARM_ID);
    assert.deepEqual(
      w.calls.filter((call) => call.startsWith('commitWrite')),
      [],
    );
  });

  it('rolls back to the previous version when the bucket names no version newer than it', async () => {
    const w = worldOf({ b1: { '/f': 'ack' }, b2: { '/f': 'refused' }, b3: { '/f': 'refused' } });
    const ctx = fakeScanContext(w, {
      intents: [{ ...intentAt('/f', ['b2', 'b3'], oldVersion), state: 'failed' }],
      backup: () => ({ path: '/f', size: 3, sha256: sha256Of('ack'), version: 400 }),
    });
    await resolveAbandonedIntents(ctx, CHARM_ID);
    assert.deepEqual(
      w.calls.filter((call) => call.startsWith('commitWrite')),
      [],
    );
  });

  // Seed 7102: a refused write put back on record over its hidden entry after a directory's delete above it was
  // acknowledged; the previous version's only holders were the touched backends, so the roll-back never finished.
  it('rolls a write back to the delete of a directory above it committed since, not to the version it began over', async () => {
    const w = worldOf({ b1: {}, b2: { '/d/e/z': 'refused' }, b3: { '/d/e/z': 'refused' } });
    const previous = { ...fileEntryOf('old', 500, 400), holders: ['b2', 'b3'] };
    const ctx = fakeScanContext(w, {
      intents: [{ ...intentAt('/d/e/z', ['b2', 'b3'], previous), state: 'failed' }],
      governing: () => ({ kind: 'tombstone', version: 900, holders: ['b1', 'b2', 'b3'], atMs: 900 }),
    });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    assert.deepEqual(w.calls, ['lock /d/e/z', 'delete b2 /d/e/z', 'delete b3 /d/e/z', 'clearIntent fence 7']);
    assert.equal(ctx.recorder.stats.intentsLeftOpen, 0);
  });

  it('rolls back to the version it began over when the tombstone governing the path is older than that', async () => {
    const w = worldOf({ b1: { '/f': 'old' }, b2: { '/f': 'refused' }, b3: {} });
    const ctx = fakeScanContext(w, {
      intents: [{ ...intentAt('/f', ['b2'], oldVersion), state: 'failed' }],
      governing: () => ({ kind: 'tombstone', version: 300, holders: ['b1', 'b2', 'b3'], atMs: 300 }),
    });
    await resolveAbandonedIntents(ctx, CHARM_ID);
    assert.deepEqual(w.calls, ['lock /f', 'put b2 /f', 'clearIntent fence 7']);
    assert.equal(w.backends.get('b2')?.get('/f'), 'old');
  });

  // Seed 7104: Redis restored from before a directory's delete; a refused write then opened its intent over the
  // deleted version, whose bytes no backend keeps: the roll-back never finished and F6 left the path unrepairable.
  it('rolls a refused write back to the delete the bucket proves after the version it began over, then records it', async () => {
    const w = worldOf({ b1: {}, b2: { '/d/y': 'refused' }, b3: { '/d/y': 'refused' } });
    const ctx = fakeScanContext(w, {
      intents: [{ ...intentAt('/d/y', ['b2', 'b3'], oldVersion), state: 'failed' }],
      history: (path) => [markerAt(path, 900)],
    });
    assert.deepEqual([...(await resolveAbandonedIntents(ctx, CHARM_ID))], []);
    assert.deepEqual(w.calls, [
      'lock /d/y',
      'delete b2 /d/y',
      'delete b3 /d/y',
      'commitDelete /d/y b2,b3 at 900',
    ]);
    assert.equal(ctx.recorder.stats.lostDeletesRecovered, 1);
    assert.equal(ctx.recorder.stats.intentsLeftOpen, 0);
  });

  it('never takes a delete marker for a write still writing: it may be the newest acknowledged one, its commit lost', async () => {
    const w = worldOf({ b1: { '/f': 'old' }, b2: { '/f': 'newest' }, b3: {} });
    const ctx = fakeScanContext(w, {
      intents: [intentAt('/f', ['b2'], oldVersion)],
      history: (path) => [markerAt(path, 900)],
    });
    await resolveAbandonedIntents(ctx, CHARM_ID);
    assert.deepEqual(
      w.calls.filter((call) => call.startsWith('commitDelete')),
      [],
    );
  });
});
