import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { percentile, ratio, summarize } from './latency-stats.ts';

describe('percentile', () => {
  it('is the nearest-rank value, whatever the input order', () => {
    const values = [5, 1, 4, 2, 3, 10, 9, 8, 7, 6];
    assert.equal(percentile(values, 50), 5);
    assert.equal(percentile(values, 99), 10);
    assert.equal(percentile(values, 0), 1);
    assert.deepEqual(values.slice(0, 3), [5, 1, 4], 'the input is not sorted in place');
  });

  it('is NaN without values', () => {
    assert.ok(Number.isNaN(percentile([], 50)));
  });
});

describe('summarize', () => {
  it('counts throughput over the wall time and in MiB of file bytes', () => {
    const summary = summarize([10, 20, 30, 40], 2000, 1024 * 1024);
    assert.equal(summary.ok, 4);
    assert.equal(summary.opsPerSec, 2);
    assert.equal(summary.mibPerSec, 2);
    assert.equal(summary.p50Ms, 20);
    assert.equal(summary.p99Ms, 40);
  });
});

describe('ratio', () => {
  it('is undefined when a side is missing, not finite or zero', () => {
    assert.equal(ratio(3, 2), 1.5);
    assert.equal(ratio(undefined, 2), undefined);
    assert.equal(ratio(1, 0), undefined);
    assert.equal(ratio(Number.NaN, 1), undefined);
  });
});
