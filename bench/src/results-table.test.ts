import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { addRatios, applyTargets, formatTable, type ResultRow } from './results-table.ts';

const row = (
  phase: string,
  size: string,
  path: ResultRow['path'],
  opsPerSec: number,
  p50Ms: number,
): ResultRow => ({
  phase,
  size,
  concurrency: 1,
  path,
  n: 10,
  errors: 0,
  opsPerSec,
  mibPerSec: opsPerSec,
  p50Ms,
  p99Ms: p50Ms * 2,
});

describe('results table', () => {
  it('compares each path with the direct row of the same measurement and marks the targets', () => {
    const rows = [
      row('upload', '64 MiB', 'direct', 10, 100),
      row('upload', '64 MiB', 'gateway', 9, 110),
      row('upload', '4 KiB', 'direct', 1000, 1),
      row('upload', '4 KiB', 'gateway', 200, 5),
      row('download', '4 KiB', 'direct', 1000, 1),
      row('download', '4 KiB', 'tcp-proxy', 800, 1.2),
      {
        phase: 'gateway peak RSS (uploads)',
        size: '4 KiB',
        path: 'gateway',
        gatewayRssMiB: 250,
      } as ResultRow,
    ];
    addRatios(rows);
    applyTargets(rows);
    assert.equal(rows[1]?.vsDirect?.throughput, 0.9);
    assert.equal(rows[1]?.met, true);
    assert.equal(rows[3]?.vsDirect?.p50, 5);
    assert.equal(rows[3]?.met, false);
    assert.equal(rows[5]?.vsDirect?.throughput, 0.8);
    assert.equal(rows[5]?.target, undefined, 'targets are the gateway’s only');
    assert.equal(rows[6]?.met, false);

    const lines = formatTable(rows).split('\n');
    assert.match(lines[0] ?? '', /^phase +│ +size │ conc │ path +│/);
    assert.ok(lines.some((line) => /gateway .*0\.90×.*≥0\.8× MiB\/s +│ yes/.test(line)));
    assert.ok(lines.some((line) => /RSS <200 MiB +│ NO/.test(line)));
  });
});
