import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '@cring/local-cluster';
import { directClient } from '@cring/test/harness/clients.ts';
import { type BenchCluster, removeRunData, startBenchCluster } from './bench-cluster.ts';
import { timeCharmCli } from './charm-cli-timing.ts';
import {
  type BenchSize,
  downloadPath,
  measureBigUpload,
  measureDownloads,
  measureReadSpread,
  measureUploads,
  type PhaseContext,
  peakMiB,
  type RowDetail,
  SPREAD_MAX_BYTES,
  writeDownloadFixture,
} from './http-phases.ts';
import { percentile } from './latency-stats.ts';
import { waitForDrain } from './replication-drain.ts';
import {
  addRatios,
  applyTargets,
  cpuPerOperation,
  formatTable,
  type ResultRow,
  RSS_LIMIT_MIB,
  summaryRows,
} from './results-table.ts';
import { readMemory } from './rss-sampler.ts';
import { measureUploadUnderSlowClients } from './slow-clients.ts';
import { fileSha256, framingBytes } from './upload-body.ts';

const KIB = 1024;
const MIB = 1024 * KIB;
const GIB = 1024 * MIB;

/**
 * BENCH_QUICK=true: a smoke run with a tenth of the operations and no 1 GiB upload. BENCH_SIZES=4KiB,1MiB: only
 * those sizes' rows (a focused comparison of two commits).
 */
function planOf(env: NodeJS.ProcessEnv) {
  const quick = env.BENCH_QUICK === 'true';
  const only = env.BENCH_SIZES?.split(',').map((s) => s.replace(/\s+/g, ''));
  const chosen = (size: BenchSize) => !only || only.includes(size.label.replace(/\s+/g, ''));
  const scaled = (n: number, min: number) => (quick ? Math.max(min, Math.round(n / 10)) : n);
  const sizes: BenchSize[] = [
    { label: '4 KiB', bytes: 4 * KIB, operations: { 1: scaled(300, 20), 16: scaled(1600, 64) } },
    { label: '1 MiB', bytes: MIB, operations: { 1: scaled(40, 8), 16: scaled(192, 32) } },
    { label: '64 MiB', bytes: 64 * MIB, operations: { 1: scaled(6, 2), 16: scaled(32, 16) } },
  ];
  // The largest body every layer accepts: the charm server and the gateway cap a request body at 1 GiB.
  const big: BenchSize = { label: '1 GiB', bytes: GIB - framingBytes(), operations: { 1: 1 } };
  return {
    quick,
    sizes: sizes.filter(chosen),
    concurrencies: [1, 16],
    big: quick || !chosen(big) ? undefined : big,
    cliIterations: quick ? 2 : 5,
  };
}

const seconds = (ms: number) => (ms / 1000).toFixed(1);

/** The HTTP phases: per size, uploads then downloads at each concurrency, then a gateway RSS row for the size. */
async function measureHttp(
  ctx: PhaseContext,
  plan: ReturnType<typeof planOf>,
  notes: string[],
  idleRssMiB: number[],
) {
  const { bench } = ctx;
  const details: RowDetail[] = [];
  // The download fixtures go through the gateway first: that also runs the user's account sync.
  for (const size of plan.sizes) {
    await writeDownloadFixture(ctx, size);
    const entry = await bench.manifest.entry(bench.charmId, downloadPath(size));
    const expected = fileSha256(size.bytes, ctx.block);
    if (entry?.kind !== 'file' || entry.sha256 !== expected) {
      notes.push(
        `fixture ${size.label}: manifest sha256 ${entry?.kind === 'file' ? entry.sha256 : '-'} ≠ ${expected}`,
      );
    } else if (size === plan.sizes[0]) {
      notes.push(
        `user ${bench.charmId}: held by ${entry.holders.join(' + ')}; the gateway writes to the first two owners ` +
          '(quorum), then a body it holds in memory (≤ 1 MiB) to the third and S3; the replicator copies larger ' +
          'ones; direct and tcp-proxy go to charm1',
      );
    }
  }
  const fixtureDrain = await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: ctx.drainTimeoutMs });
  ctx.log(`fixtures written; replication drained in ${seconds(fixtureDrain.ms)} s`);

  for (const size of plan.sizes) {
    // A fresh gateway per size: its peak RSS then belongs to this size's uploads, not to what ran before.
    await bench.restartGateway();
    const idle = readMemory(bench.processes().gateway ?? 0);
    if (idle) idleRssMiB.push(idle.rssBytes / MIB);
    const uploads: RowDetail[] = [];
    for (const concurrency of plan.concurrencies)
      uploads.push(...(await measureUploads(ctx, size, concurrency)));
    details.push(...uploads);
    const sampled = uploads.flatMap((d) => (d.memory ? [d.memory] : []));
    details.push({
      row: {
        phase: 'gateway peak RSS (uploads)',
        size: size.label,
        path: 'gateway',
        gatewayRssMiB: Math.max(...sampled.map(peakMiB)),
        note:
          `fresh gateway idle at ${((idle?.rssBytes ?? Number.NaN) / MIB).toFixed(0)} MiB before these uploads` +
          (sampled.every((m) => m.hwmReset) ? '' : ' (VmHWM could not be reset: sampled only)'),
      },
    });
    for (const concurrency of plan.concurrencies)
      details.push(...(await measureDownloads(ctx, size, concurrency)));
  }
  // A run without small sizes (BENCH_SIZES=64MiB) has no file to spread.
  if (plan.sizes.some((size) => size.bytes <= SPREAD_MAX_BYTES)) {
    details.push(await measureReadSpread(ctx, plan.sizes, plan.quick ? 64 : 480));
  }
  return details;
}

/** `charm fs cp` / `charm fs cat` of 1 MiB with the real CLI, through the gateway and direct to backend 1. */
async function measureCli(ctx: PhaseContext, iterations: number, runDir: string): Promise<RowDetail[]> {
  const { bench } = ctx;
  ctx.log(`charm CLI: fs cp / fs cat of 1 MiB, ${iterations} iterations per path`);
  const cliDir = join(runDir, 'cli');
  mkdirSync(cliDir, { recursive: true });
  const localFile = join(cliDir, 'one-mib.txt');
  const content = randomBytes((3 * MIB) / 4).toString('base64'); // 1 MiB of text: `fs cat` output compares as a string
  writeFileSync(localFile, content);
  const clients = [
    { name: 'gateway', charm: bench.charm, remotePath: '/bench-cli/gateway.txt' },
    { name: 'direct', charm: directClient(bench.cluster, 'bench', 0), remotePath: '/bench-cli/direct.txt' },
  ];
  const drain = () => waitForDrain(bench.manifest, bench.charmId, { timeoutMs: ctx.drainTimeoutMs });
  // Warm-up: the first fs use creates the user's encrypt key (fanned out to every backend by the gateway).
  for (const client of clients) await client.charm.run(['fs', 'cp', localFile, `charm:${client.remotePath}`]);
  await drain();
  const timings = await timeCharmCli({
    clients,
    localFile,
    expected: content,
    iterations,
    between: async (name) => {
      if (name === 'gateway') await drain();
    },
  });
  const out: RowDetail[] = [];
  for (const [phase, pick] of [
    ['cli fs cp', (t: { cpMs: number[] }) => t.cpMs],
    ['cli fs cat', (t: { catMs: number[] }) => t.catMs],
  ] as const) {
    for (const path of ['direct', 'gateway'] as const) {
      const timing = timings.get(path);
      if (!timing) continue;
      const values = pick(timing);
      out.push({
        row: {
          phase,
          size: '1 MiB',
          concurrency: 1,
          path,
          n: values.length,
          errors: timing.errors,
          p50Ms: percentile(values, 50),
          p99Ms: percentile(values, 99),
        },
        firstError: timing.firstError,
      });
    }
  }
  return out;
}

/** The sentence the run ends with: the 1 GiB upload through the gateway and direct. */
function closingNote(rows: ResultRow[]): string | undefined {
  const direct = rows.find((r) => r.phase === 'upload 1 GiB' && r.path === 'direct');
  const gateway = rows.find((r) => r.phase === 'upload 1 GiB' && r.path === 'gateway');
  if (direct?.p50Ms === undefined || gateway?.p50Ms === undefined || gateway.n === 0) return undefined;
  const rss = gateway.gatewayRssMiB ?? Number.NaN;
  return (
    `A 1 GiB upload (a 1 GiB request body) through the gateway took ${seconds(gateway.p50Ms)} s with the ` +
    `gateway's peak RSS at ${rss.toFixed(0)} MiB (${rss < RSS_LIMIT_MIB ? 'under' : 'NOT under'} ` +
    `${RSS_LIMIT_MIB} MiB); the same upload direct to one backend took ${seconds(direct.p50Ms)} s ` +
    `(gateway throughput ${gateway.vsDirect?.throughput?.toFixed(2)}× direct; replication then drained in ` +
    `${gateway.drainSeconds?.toFixed(1)} s).`
  );
}

async function main(): Promise<number> {
  const plan = planOf(process.env);
  const benchDir = join(repoRoot, '.cring', 'bench');
  const runDir = join(benchDir, 'run');
  rmSync(runDir, { recursive: true, force: true });
  const log = (message: string) => console.error(`[bench ${seconds(performance.now())}s] ${message}`);
  const startedAt = new Date().toISOString();

  log(`starting a local cluster in ${runDir}`);
  let bench: BenchCluster;
  try {
    bench = await startBenchCluster({ runDir });
  } catch (err) {
    console.error(`the cluster did not start: ${(err as Error).message}`);
    return 1;
  }
  const ctx: PhaseContext = {
    bench,
    // One random block repeated: every body is the same bytes on every replay, without holding 1 GiB.
    block: randomBytes(MIB),
    drainTimeoutMs: 150_000,
    log,
  };
  const notes: string[] = [];
  const details: RowDetail[] = [];
  const idleRssMiB: number[] = [];
  try {
    details.push(...(await measureHttp(ctx, plan, notes, idleRssMiB)));
    details.push(...(await measureCli(ctx, plan.cliIterations, runDir)));
    details.push(await measureUploadUnderSlowClients(ctx, plan.quick ? 8 : 40));
    if (plan.big) {
      await bench.restartGateway();
      details.push(...(await measureBigUpload(ctx, plan.big)));
    }
  } catch (err) {
    notes.push(`the run stopped early: ${(err as Error).message}`);
    log(`the run stopped early: ${(err as Error).stack ?? err}`);
  }
  const ran = bench.running();
  if (!ran) notes.push('a cluster process was no longer running at the end: see the logs');
  await bench.stop();
  removeRunData(runDir);

  for (const { row, cpuSeconds, drainCpuSeconds } of details) {
    if (!cpuSeconds || !row.n) continue;
    const total = { ...cpuSeconds };
    for (const [name, value] of Object.entries(drainCpuSeconds ?? {}))
      total[name] = (total[name] ?? 0) + value;
    row.cpuMsPerOp = cpuPerOperation(total, row.n);
  }
  const rows = details.map((d) => d.row);
  addRatios(rows);
  applyTargets(rows);
  rows.push(...summaryRows(rows, idleRssMiB));
  const small = rows.find((r) => r.phase.startsWith('CPU per 4 KiB write'));
  if (small?.cpuMsPerOp) {
    // The gateway makes a 4 KiB write's remaining copies (third owner, S3) itself: no job is left to run.
    notes.push(
      `replicator CPU per 4 KiB write: ${small.cpuMsPerOp.replicator.toFixed(2)} ms (no job runs: the gateway ` +
        'copies a body it holds in memory to the third owner and S3; npm run profile:replicator measures a job)',
    );
  }
  for (const { row, firstError } of details) {
    const label = [row.phase, row.size, row.concurrency && `×${row.concurrency}`, row.path]
      .filter(Boolean)
      .join(' ');
    if (firstError) notes.push(`${label}: ${firstError}`);
    if (row.note) notes.push(`${label}: ${row.note}`);
  }
  const closing = closingNote(rows);

  console.log(formatTable(rows));
  console.log('');
  for (const note of notes) console.log(`note: ${note}`);
  if (closing) console.log(closing);

  const results = {
    startedAt,
    finishedAt: new Date().toISOString(),
    host: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryBytes: totalmem(), node: process.version },
    plan,
    rows,
    details: details.map(({ row, ...rest }) => ({
      phase: row.phase,
      size: row.size,
      concurrency: row.concurrency,
      path: row.path,
      ...rest,
    })),
    notes,
    closing,
  };
  writeFileSync(join(benchDir, 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  log(`wrote ${join(benchDir, 'results.json')}`);
  return ran ? 0 : 1;
}

process.exit(await main());
