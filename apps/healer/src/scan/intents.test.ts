import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WriteIntent } from '@cring/manifest';
import { CHARM_ID, fakeScanContext, worldOf } from './fake-scan-context.ts';
import { resolveAbandonedIntents } from './intents.ts';

const intentAt = (path: string, touched: string[]): WriteIntent => ({
  path,
  fence: 7,
  atMs: 1_000,
  owner: 'gateway-1',
  state: 'writing',
  touched,
});

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
});
