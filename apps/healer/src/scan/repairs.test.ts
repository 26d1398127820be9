import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { JobQueues } from '@cring/jobs';
import { isFileRepairJob, isStaleMarker, type JobStates, type JobStatus } from './job-states.ts';
import { createRepairs, liveJobFor } from './repairs.ts';
import { waitForRepairs } from './wait.ts';

const job = {
  kind: 'replicate' as const,
  charmId: 'c',
  path: '/p',
  version: 1,
  sha256: 'a'.repeat(64),
  size: 1,
  mode: 420,
  sources: ['b1'],
};

function fakeQueues() {
  const added: string[] = [];
  const queues = {
    async enqueueForBackend(backend: string, _job: unknown, extra: { idSuffix?: string } = {}) {
      const id = `replicate-c-1-${extra.idSuffix}`;
      added.push(`${backend}:${id}`);
      return id;
    },
    async enqueueForS3(_job: unknown, extra: { idSuffix?: string } = {}) {
      const id = `backup-c-1-${extra.idSuffix}`;
      added.push(`s3:${id}`);
      return id;
    },
  } as unknown as JobQueues;
  return { queues, added };
}

describe('repairs', () => {
  it('finds the live job of the same change, not of another version', () => {
    assert.equal(
      liveJobFor('replicate-c-1', ['replicate-c-12', 'replicate-c-1-heal-x']),
      'replicate-c-1-heal-x',
    );
    assert.equal(liveJobFor('replicate-c-1', ['replicate-c-1']), 'replicate-c-1');
    assert.equal(liveJobFor('replicate-c-1', ['replicate-c-12', 'delete-c-1']), undefined);
  });

  it('enqueues with the scan suffix unless a live job exists, and tracks both', async () => {
    const { queues, added } = fakeQueues();
    const repairs = createRepairs({ queues, idSuffix: 'heal-s1', dryRun: false });
    const fresh = await repairs.forBackend('b2', job, []);
    const existing = await repairs.forBackend('b3', job, ['replicate-c-1']);
    const backup = await repairs.forS3({ ...job, kind: 'backup' }, []);
    assert.deepEqual(added, ['b2:replicate-c-1-heal-s1', 's3:backup-c-1-heal-s1']);
    assert.equal(fresh.existing, false);
    assert.equal(existing.existing, true);
    assert.equal(existing.jobId, 'replicate-c-1');
    assert.equal(backup.target, 's3');
    assert.equal(repairs.tracked.length, 3);
  });

  it('enqueues and tracks nothing in a dry run', async () => {
    const { queues, added } = fakeQueues();
    const repairs = createRepairs({ queues, idSuffix: 'heal-s1', dryRun: true });
    const planned = await repairs.forBackend('b2', job, []);
    assert.equal(planned.jobId, 'replicate-c-1-heal-s1');
    assert.deepEqual(added, []);
    assert.deepEqual(repairs.tracked, []);
  });
});

describe('pending markers', () => {
  const marker = (status: JobStatus, sinceMs = 0) => ({ target: 'b', jobId: 'delete-c-2', sinceMs, status });

  it('are stale once their job completed, failed for good, or vanished past the grace period', () => {
    assert.equal(isStaleMarker(marker({ state: 'alive' }), 10_000, 0), false);
    assert.equal(isStaleMarker(marker({ state: 'completed' }), 10_000, 60_000), true);
    assert.equal(isStaleMarker(marker({ state: 'failed', reason: 'x' }), 10_000, 60_000), true);
    assert.equal(isStaleMarker(marker({ state: 'missing' }, 9_000), 10_000, 60_000), false, 'just written');
    assert.equal(isStaleMarker(marker({ state: 'missing' }, 0), 70_000, 60_000), true);
    assert.equal(isFileRepairJob('restore-c-3-heal-x'), true);
    assert.equal(isFileRepairJob('seq-c-abc-4'), false, 'account state is not the scan’s to judge');
  });
});

describe('waitForRepairs', () => {
  it('polls until every job completed or failed, and times out on the rest', async () => {
    const tracked = ['a', 'b', 'c', 'd'].map((id) => ({
      target: 'b1',
      jobId: id,
      charmId: 'c',
      path: `/${id}`,
      kind: 'replicate',
      existing: false,
    }));
    let polls = 0;
    const jobStates: JobStates = {
      async status(_target, jobId) {
        polls++;
        if (jobId === 'a') return { state: 'completed', outcome: 'applied' };
        if (jobId === 'b') return polls > 6 ? { state: 'completed', outcome: 'dropped' } : { state: 'alive' };
        if (jobId === 'c') return { state: 'failed', reason: 'no source' };
        return { state: 'alive' };
      },
      async markerSet() {
        return false;
      },
      async close() {},
    };
    const result = await waitForRepairs([...tracked, tracked[0] as (typeof tracked)[0]], jobStates, {
      // Long enough for b's few polls on a loaded machine; d never finishes and runs into it.
      timeoutMs: 2000,
      pollMs: 5,
    });
    assert.equal(result.completed, 2);
    assert.equal(result.applied, 1);
    assert.equal(result.dropped, 1);
    assert.deepEqual(
      result.failed.map((f) => f.reason),
      ['no source'],
    );
    assert.equal(result.pending, 1);
    assert.equal(result.timedOut, true);
  });
});
