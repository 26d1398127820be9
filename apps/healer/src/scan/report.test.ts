import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { emptyStats, finalize, formatSummary, ratesOf, type ScanReport, type ScanStats } from './report.ts';

function report(stats: Partial<ScanStats>, extra: Partial<ScanReport> = {}): ScanReport {
  const full = { ...emptyStats(), users: 1, files: 4, bytes: 2 * 1024 * 1024, ...stats };
  return finalize({
    scanId: 'x',
    startedAt: '',
    finishedAt: '',
    scanSeconds: 2,
    options: { deep: false, prune: false, dryRun: false, resume: false, maxRequestsPerSecond: 200 },
    totalUsers: 1,
    interrupted: false,
    stats: full,
    rates: ratesOf(full, 2),
    unreachable: [],
    findings: [],
    findingsOmitted: 0,
    ...extra,
  });
}

const waited = (fields: Partial<NonNullable<ScanReport['wait']>>) => ({
  completed: 0,
  applied: 0,
  dropped: 0,
  failed: [],
  pending: 0,
  seconds: 1,
  timedOut: false,
  ...fields,
});

describe('finalize', () => {
  it('exits 0 when healthy', () => {
    const healthy = report({});
    assert.equal(healthy.exitCode, 0);
    assert.equal(healthy.healthy, true);
    assert.deepEqual(healthy.rates, { filesPerSecond: 2, mibPerSecond: 1 });
  });

  it('exits 0 once every repair completed, 1 while some failed, remain or were not waited for', () => {
    const found = { missing: 2, repairsEnqueued: 2 };
    assert.equal(report(found).exitCode, 1, 'not waited for');
    const repaired = report(found, { wait: waited({ completed: 2, applied: 2 }) });
    assert.equal(repaired.exitCode, 0);
    assert.equal(repaired.healthy, false, 'repaired is not the same as healthy');
    assert.equal(report(found, { wait: waited({ completed: 1, pending: 1, timedOut: true }) }).exitCode, 1);
    const failed = {
      job: { target: 'b', jobId: 'j', charmId: 'c', path: '/p', kind: 'replicate', existing: false },
      reason: 'x',
    };
    assert.equal(report(found, { wait: waited({ completed: 1, failed: [failed] }) }).exitCode, 1);
  });

  it('exits 1 for what cannot be repaired or checked, an interruption, and a dry run that found problems', () => {
    assert.equal(report({ unrepairable: 1 }).exitCode, 1);
    assert.equal(report({ intentsLeftOpen: 1 }).exitCode, 1, 'a roll-back left unfinished (row I3)');
    assert.equal(report({}, { unreachable: [{ target: 'charm2', reason: 'down' }] }).exitCode, 1);
    assert.equal(report({}, { interrupted: true }).exitCode, 1);
    const dry = { deep: false, prune: false, dryRun: true, resume: false, maxRequestsPerSecond: 200 };
    assert.equal(report({ adopted: 1 }, { options: dry }).exitCode, 1);
    assert.equal(report({}, { options: dry }).exitCode, 0);
  });
});

describe('formatSummary', () => {
  it('prints the table, the rates and the verdict', () => {
    const text = formatSummary(
      report(
        { missing: 3, sizeMismatched: 1, repairsEnqueued: 4 },
        { wait: waited({ completed: 4, applied: 4 }) },
      ),
    );
    assert.match(
      text,
      /users\s+files\s+missing\s+size-mismatched\s+hash-mismatched\s+repaired\s+unrepairable\s+seconds/,
    );
    assert.match(text, /1\/1\s+4\s+3\s+1\s+-\s+4\s+0\s+2\.0/);
    assert.match(text, /2\.0 files\/s, 1\.00 MiB\/s/);
    assert.match(text, /4 completed/);
    assert.match(text, /repaired: everything found was repaired/);
  });
});
