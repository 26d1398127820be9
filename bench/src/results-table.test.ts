import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  addRatios,
  applyTargets,
  cpuPerOperation,
  formatTable,
  type ResultRow,
  summaryRows,
} from './results-table.ts';

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
      row('upload', '4 KiB', 'gateway', 200, 2.5),
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
    assert.equal(rows[3]?.vsDirect?.p50, 2.5);
    assert.equal(rows[3]?.met, true, 'p50 at most 2.5× direct');
    assert.equal(rows[5]?.vsDirect?.throughput, 0.8);
    assert.equal(rows[5]?.target, undefined, 'targets are the gateway’s only');
    assert.equal(rows[6]?.met, false);

    const lines = formatTable(rows).split('\n');
    assert.match(lines[0] ?? '', /^phase +│ +size │ conc │ path +│/);
    assert.ok(lines.some((line) => /gateway .*0\.90×.*≥0\.65× thr +│ yes/.test(line)));
    assert.ok(lines.some((line) => /<200 MiB +│ NO/.test(line)));
  });

  it('says on a gateway row what the fan-out path reached, and when that is already short of the target', () => {
    const rows = [
      row('upload', '1 MiB', 'direct', 100, 5),
      row('upload', '1 MiB', 'fan-out', 30, 20),
      row('upload', '1 MiB', 'gateway', 20, 40),
      row('upload', '64 MiB', 'direct', 10, 100),
      row('upload', '64 MiB', 'fan-out', 8, 120),
      row('upload', '64 MiB', 'gateway', 6, 150),
    ];
    addRatios(rows);
    applyTargets(rows);
    assert.equal(rows[1]?.target, undefined, 'the fan-out row has no target of its own');
    assert.equal(rows[2]?.met, false);
    assert.match(
      rows[2]?.note ?? '',
      /reached 0\.30×: with no gateway at all, .* missed the target in this run/,
    );
    assert.equal(rows[5]?.met, false, 'the gateway at 0.6× misses 0.65× though the fan-out met it');
    assert.equal(
      rows[5]?.note,
      'fan-out (the client writing every backend and S3 itself, no gateway) reached 0.80×',
    );
  });

  it('says on a gateway download row what one plain extra hop reached, and when that is short of the target', () => {
    const rows = [
      row('download', '4 KiB', 'direct', 1000, 1),
      row('download', '4 KiB', 'tcp-proxy', 850, 1.2),
      row('download', '4 KiB', 'gateway', 500, 2),
      row('download', '64 MiB', 'direct', 100, 10),
      row('download', '64 MiB', 'tcp-proxy', 95, 11),
      row('download', '64 MiB', 'gateway', 80, 12),
    ];
    addRatios(rows);
    applyTargets(rows);
    assert.equal(rows[1]?.target, undefined, 'the tcp-proxy row has no target of its own');
    assert.equal(rows[2]?.met, false);
    assert.equal(
      rows[2]?.note,
      'tcp-proxy (one plain extra hop, no work) reached 0.85×: a hop that only relays bytes missed the target in this run',
    );
    assert.equal(rows[5]?.met, false, 'the gateway at 0.8× misses 0.9× though the plain hop met it');
    assert.equal(rows[5]?.note, 'tcp-proxy (one plain extra hop, no work) reached 0.95×');
  });

  it('sums CPU per operation by process group, leaving out the load generator', () => {
    const cpu = cpuPerOperation(
      {
        gateway: 0.2,
        replicator: 0.3,
        charm1: 0.1,
        charm2: 0.05,
        'charm2-agent': 0.05,
        s3: 0.05,
        redis: 0.05,
        bench: 9,
        'tcp-proxy': 1,
      },
      100,
    );
    assert.deepEqual(
      Object.fromEntries(Object.entries(cpu).map(([k, v]) => [k, Math.round(v * 100) / 100])),
      { gateway: 2, replicator: 3, backends: 2, s3: 0.5, redis: 0.5, total: 8 },
    );
  });

  it('adds the peak and idle RSS rows and the CPU of a small write, each against its target', () => {
    const write: ResultRow = {
      phase: 'upload',
      size: '4 KiB',
      concurrency: 16,
      path: 'gateway',
      n: 100,
      gatewayRssMiB: 150,
      cpuMsPerOp: { gateway: 1, replicator: 2, backends: 1.5, s3: 0.2, redis: 0.2, total: 4.9 },
    };
    const download: ResultRow = { phase: 'download', size: '64 MiB', path: 'gateway', gatewayRssMiB: 210 };
    const [peak, idle, cpu] = summaryRows([write, download], [80, 101]);
    assert.equal(peak?.gatewayRssMiB, 210);
    assert.equal(peak?.met, false);
    assert.equal(idle?.gatewayRssMiB, 101);
    assert.equal(idle?.met, false, 'idle must stay at or below 100 MiB');
    assert.equal(cpu?.cpuMsPerOp?.total, 4.9);
    assert.equal(cpu?.met, false, 'at most 4 ms');
    const table = formatTable([write]);
    assert.match(table, /1\.0 2\.0 1\.5 0\.20 0\.20 │ +4\.9/);
  });
});
