import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { freePort, repoRoot } from '@cring/local-cluster';
import { type BenchCluster, removeRunData, startBenchCluster } from './bench-cluster.ts';
import { type CpuProfile, type ProfileSummary, summarizeCpuProfile } from './cpu-profile-summary.ts';
import { getDownload, type HttpEndpoint, type LoadResult, postUpload, runLoad } from './http-load.ts';
import { connectInspector, type NodeMemoryUsage } from './inspector-memory.ts';
import { percentile } from './latency-stats.ts';
import { cpuSecondsOf, meterCpu } from './process-cpu.ts';
import { type MonitoredCommand, monitorRedis, ranByScript, roundTrips } from './redis-round-trips.ts';
import { waitForDrain } from './replication-drain.ts';
import { readMemory, sampleMemory } from './rss-sampler.ts';
import { createUploadBody, type UploadBody } from './upload-body.ts';
import { breakDownWrites, PART_STEPS, WRITE_STEPS } from './write-path-breakdown.ts';

/*
 * `npm run profile -w @cring/bench`: where the gateway's time and memory go. Not part of `npm run bench`: it
 * restarts the gateway several times (with --cpu-prof, with --inspect) and takes a few minutes. Prints a report
 * and writes .cring/bench/profile.json, the .cpuprofile files next to it (open them in Chrome DevTools).
 * PROFILE_SECTIONS (comma-separated: breakdown, round-trips, overlap, rewrite-lock, cpu-per-process, cpu-profiles, memory, rss)
 * runs only those sections.
 */

const KIB = 1024;
const MIB = 1024 * KIB;
const mib = (bytes: number) => (bytes / MIB).toFixed(0);
const ms = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(2);
const nowUs = () => Number(process.hrtime.bigint() / 1000n);
const p50 = (result: LoadResult) =>
  percentile(
    result.timings.map((t) => t.latencyMs),
    50,
  );
const p99 = (result: LoadResult) =>
  percentile(
    result.timings.map((t) => t.latencyMs),
    99,
  );

interface Profiler {
  bench: BenchCluster;
  block: Buffer;
  out: (line?: string) => void;
  report: Record<string, unknown>;
  /** Whether the download workloads' files are written (writeDownloadFixtures). */
  fixturesWritten?: boolean;
}

const drain = (ctx: Profiler) => waitForDrain(ctx.bench.manifest, ctx.bench.charmId, { timeoutMs: 300_000 });

let pathCounter = 0;
const uniquePath = (prefix: string) => `/profile/${prefix}/${Date.now()}-${++pathCounter}`;

function uploads(
  endpoint: HttpEndpoint,
  ctx: Profiler,
  body: UploadBody,
  concurrency: number,
  n: number,
  path?: string,
) {
  const token = ctx.bench.token();
  return runLoad({
    concurrency,
    operations: n,
    operation: () => postUpload(endpoint, path ?? uniquePath(`${body.fileBytes}`), token, body),
  });
}

function downloads(ctx: Profiler, path: string, bytes: number, concurrency: number, n: number) {
  const token = ctx.bench.token();
  return runLoad({
    concurrency,
    operations: n,
    operation: () => getDownload(ctx.bench.endpoints.gateway, path, token, bytes),
  });
}

/** 1. The write path replayed step by step with the gateway's own modules, next to a direct upload. */
async function writeBreakdown(ctx: Profiler, runDir: string) {
  ctx.out(
    '## 1. Write path, step by step (gateway modules replayed in-process, replication drained between writes)',
  );
  const sizes = [
    { label: '4 KiB', bytes: 4 * KIB, n: 50 },
    { label: '1 MiB', bytes: MIB, n: 30 },
    { label: '64 MiB', bytes: 64 * MIB, n: 4 },
  ];
  const columns: Record<string, Record<string, number>> = {};
  for (const size of sizes) {
    const body = createUploadBody(size.bytes, ctx.block);
    const { steps, parts } = await breakDownWrites({
      cluster: ctx.bench.cluster,
      charmId: ctx.bench.charmId,
      token: ctx.bench.token(),
      body,
      iterations: size.n,
      spoolDir: join(runDir, 'breakdown-spool'),
    });
    const direct = await uploads(ctx.bench.endpoints.direct, ctx, body, 1, size.n);
    const total = WRITE_STEPS.filter((s) => !s.startsWith(' ')).reduce((sum, s) => sum + (steps[s] ?? 0), 0);
    columns[size.label] = { ...steps, ...parts, 'sum of steps': total, 'direct POST to charm1': p50(direct) };
    ctx.bench.removeLeakedUploadFiles();
  }
  const rows = [...WRITE_STEPS, 'sum of steps', 'direct POST to charm1', ...PART_STEPS];
  ctx.out(`${'p50 ms'.padEnd(44)}${sizes.map((s) => s.label.padStart(10)).join('')}`);
  for (const row of rows) {
    ctx.out(`${row.padEnd(44)}${sizes.map((s) => ms(columns[s.label]?.[row]).padStart(10)).join('')}`);
  }
  ctx.report.writeBreakdown = columns;
}

/**
 * 1b. The Redis commands of one 4 KiB upload through the real gateway (MONITOR), the replicator paused so only
 * the gateway's commands show. Round trips: commands of one client sent together count once.
 */
async function writeRoundTrips(ctx: Profiler) {
  ctx.out('\n## 1b. Redis commands of one 4 KiB upload through the gateway (MONITOR, replicator paused)');
  const body = createUploadBody(4 * KIB, ctx.block);
  await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, 5); // warm connections and scripts
  await drain(ctx);
  ctx.bench.replicator.kill('SIGSTOP');
  let commands: MonitoredCommand[];
  try {
    commands = await monitorRedis(ctx.bench.cluster.redis.url, async () => {
      await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, 1);
    });
  } finally {
    ctx.bench.replicator.kill('SIGCONT');
  }
  await drain(ctx);
  const first = commands[0]?.atMs ?? 0;
  const sent = commands.filter((c) => !ranByScript(c));
  for (const c of sent)
    ctx.out(`  +${(c.atMs - first).toFixed(3).padStart(7)} ms  ${c.client.padEnd(16)} ${c.command}`);
  ctx.out(
    `  ${sent.length} commands sent (${commands.length - sent.length} more run inside scripts), ` +
      `${roundTrips(commands)} round trips, ${((commands.at(-1)?.atMs ?? first) - first).toFixed(2)} ms first to last`,
  );
  ctx.report.writeRoundTrips = { sent: sent.length, roundTrips: roundTrips(commands), list: commands };
}

/** 2. The same uploads with the replicator running and paused: what background replication costs a write. */
async function replicationOverlap(ctx: Profiler) {
  ctx.out('\n## 2. Gateway uploads (c=1) with the replicator running vs paused (SIGSTOP)');
  const out: Record<string, unknown> = {};
  for (const [label, bytes, n] of [
    ['4 KiB', 4 * KIB, 200],
    ['64 MiB', 64 * MIB, 4],
  ] as const) {
    const body = createUploadBody(bytes, ctx.block);
    const running = await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, n);
    await drain(ctx);
    ctx.bench.replicator.kill('SIGSTOP');
    let paused: LoadResult;
    try {
      paused = await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, n);
    } finally {
      ctx.bench.replicator.kill('SIGCONT');
    }
    const drained = await drain(ctx);
    ctx.bench.removeLeakedUploadFiles();
    ctx.out(
      `${label.padEnd(8)} running: p50 ${ms(p50(running))} ms p99 ${ms(p99(running))} ms │ paused: p50 ` +
        `${ms(p50(paused))} ms p99 ${ms(p99(paused))} ms │ backlog drained in ${(drained.ms / 1000).toFixed(1)} s`,
    );
    out[label] = { runningP50Ms: p50(running), pausedP50Ms: p50(paused), backlogDrainMs: drained.ms };
  }
  ctx.report.replicationOverlap = out;
}

/** 3. Rewriting one path vs writing new paths: the replicator holds the path lock while it copies. */
async function rewriteLock(ctx: Profiler) {
  ctx.out('\n## 3. 4 KiB uploads (c=1): a new path each time vs rewriting one path');
  const body = createUploadBody(4 * KIB, ctx.block);
  const fresh = await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, 200);
  await drain(ctx);
  const same = await uploads(ctx.bench.endpoints.gateway, ctx, body, 1, 200, uniquePath('rewrite'));
  await drain(ctx);
  ctx.out(`new paths:   p50 ${ms(p50(fresh))} ms p99 ${ms(p99(fresh))} ms`);
  ctx.out(`same path:   p50 ${ms(p50(same))} ms p99 ${ms(p99(same))} ms`);
  ctx.report.rewriteLock = { newPathP50Ms: p50(fresh), samePathP50Ms: p50(same), samePathP99Ms: p99(same) };
}

/** 4. CPU seconds per process for the same 16 × 64 MiB uploads, direct and through the gateway (+ drain). */
async function cpuPerProcess(ctx: Profiler) {
  ctx.out(
    '\n## 4. CPU seconds per process, 16 × 64 MiB uploads at c=16 (gateway: including the replication drain)',
  );
  const body = createUploadBody(64 * MIB, ctx.block);
  const out: Record<string, unknown> = {};
  for (const path of ['direct', 'gateway'] as const) {
    const cpu = meterCpu(ctx.bench.processes());
    const started = performance.now();
    const result = await uploads(ctx.bench.endpoints[path], ctx, body, 16, 16);
    const uploadMs = performance.now() - started;
    const drained = path === 'gateway' ? await drain(ctx) : undefined;
    const seconds = cpu.stop();
    ctx.bench.removeLeakedUploadFiles();
    const total = Object.values(seconds).reduce((a, b) => a + b, 0);
    ctx.out(
      `${path.padEnd(8)} wall ${(uploadMs / 1000).toFixed(1)} s${drained ? ` + drain ${(drained.ms / 1000).toFixed(1)} s` : ''}` +
        ` │ CPU ${total.toFixed(1)} s: ${Object.entries(seconds)
          .filter(([, s]) => s >= 0.05)
          .sort((a, b) => b[1] - a[1])
          .map(([name, s]) => `${name} ${s.toFixed(1)}`)
          .join(', ')}${result.errors ? ` (${result.errors} errors)` : ''}`,
    );
    out[path] = { uploadMs, drainMs: drained?.ms, cpuSeconds: seconds };
  }
  ctx.report.cpuPerProcess = out;
}

function printProfile(ctx: Profiler, summary: ProfileSummary) {
  for (const c of summary.categories.filter((c) => c.share >= 0.005)) {
    ctx.out(`  ${(c.share * 100).toFixed(1).padStart(5)}%  ${c.ms.toFixed(0).padStart(6)} ms  ${c.name}`);
  }
  ctx.out('  top self time:');
  for (const f of summary.topFunctions.slice(0, 12)) {
    ctx.out(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name} ${f.where}`);
  }
}

/**
 * The files the download workloads read, written through the gateway and replicated, once per run: every section
 * that downloads calls this first, so any one of them runs alone (PROFILE_SECTIONS=rss read missing files).
 */
async function writeDownloadFixtures(ctx: Profiler) {
  if (ctx.fixturesWritten) return;
  for (const [bytes, path] of [
    [64 * MIB, '/profile/dl-64m'],
    [MIB, '/profile/dl-1m'],
    [4 * KIB, '/profile/dl-4k'],
  ] as const)
    await uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(bytes, ctx.block), 1, 1, path);
  await drain(ctx);
  ctx.fixturesWritten = true;
}

/** 5. CPU profiles of the real gateway process, one fresh process per workload, start-up left out. */
async function cpuProfiles(ctx: Profiler, profileDir: string) {
  ctx.out('\n## 5. CPU profiles of the gateway process (node --cpu-prof), self time by category');
  mkdirSync(profileDir, { recursive: true });
  await writeDownloadFixtures(ctx);
  const workloads: { name: string; run: () => Promise<LoadResult> }[] = [
    {
      name: 'upload-4k-c1',
      run: () => uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(4 * KIB, ctx.block), 1, 300),
    },
    {
      name: 'upload-4k-c16',
      run: () => uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(4 * KIB, ctx.block), 16, 800),
    },
    {
      name: 'upload-1m-c1',
      run: () => uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(MIB, ctx.block), 1, 100),
    },
    {
      name: 'upload-1m-c16',
      run: () => uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(MIB, ctx.block), 16, 160),
    },
    {
      name: 'upload-64m-c1',
      run: () => uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(64 * MIB, ctx.block), 1, 5),
    },
    { name: 'download-4k-c1', run: () => downloads(ctx, '/profile/dl-4k', 4 * KIB, 1, 500) },
    { name: 'download-4k-c16', run: () => downloads(ctx, '/profile/dl-4k', 4 * KIB, 16, 3000) },
    { name: 'download-1m-c1', run: () => downloads(ctx, '/profile/dl-1m', MIB, 1, 300) },
    { name: 'download-64m-c16', run: () => downloads(ctx, '/profile/dl-64m', 64 * MIB, 16, 32) },
  ];
  const out: Record<string, unknown> = {};
  // PROFILE_WORKLOADS=download-4k-c1,… profiles only those workloads.
  const only = process.env.PROFILE_WORKLOADS?.split(',').map((s) => s.trim());
  for (const workload of workloads.filter((w) => !only || only.includes(w.name))) {
    const file = join(profileDir, `${workload.name}.cpuprofile`);
    rmSync(file, { force: true });
    await ctx.bench.restartGateway({
      NODE_OPTIONS: `--cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-name=${workload.name}.cpuprofile`,
    });
    const fromUs = nowUs();
    const result = await workload.run();
    const toUs = nowUs();
    await ctx.bench.restartGateway(); // the profile is written when the profiled process exits
    await drain(ctx);
    ctx.bench.removeLeakedUploadFiles();
    const summary = summarizeCpuProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, {
      window: { fromUs, toUs },
    });
    ctx.out(
      `${workload.name}: ${result.timings.length} ops in ${((toUs - fromUs) / 1e6).toFixed(1)} s, p50 ${ms(p50(result))} ms (${file})`,
    );
    printProfile(ctx, summary);
    out[workload.name] = { p50Ms: p50(result), wallMs: (toUs - fromUs) / 1000, summary };
  }
  ctx.report.cpuProfiles = out;
}

/** 6. What the gateway's memory is (V8 heap vs Buffers), idle and under 64 MiB × 16 uploads and downloads. */
async function memoryAnatomy(ctx: Profiler) {
  ctx.out('\n## 6. Gateway memory (MiB): RSS vs V8 heap vs Buffers (process.memoryUsage over --inspect)');
  await writeDownloadFixtures(ctx);
  const port = await freePort();
  await ctx.bench.restartGateway({ NODE_OPTIONS: `--inspect=127.0.0.1:${port} --expose-gc` });
  const inspector = await connectInspector(port);
  const fields = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'] as const;
  const line = (label: string, usage: NodeMemoryUsage) =>
    ctx.out(`${label.padEnd(34)}${fields.map((f) => `${f} ${mib(usage[f]).padStart(4)}`).join('  ')}`);
  const out: Record<string, NodeMemoryUsage> = {};
  try {
    out.idle = await inspector.memoryUsage();
    line('idle', out.idle);
    await inspector.collectGarbage();
    out.idleAfterGc = await inspector.memoryUsage();
    line('idle, after a full GC', out.idleAfterGc);
    const peakDuring = async (work: Promise<LoadResult>) => {
      const peak: NodeMemoryUsage = { rss: 0, heapTotal: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
      let done = false;
      void work.finally(() => {
        done = true;
      });
      while (!done) {
        const usage = await inspector.memoryUsage();
        for (const f of fields) peak[f] = Math.max(peak[f], usage[f]);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await work;
      return peak;
    };
    out.uploadPeak = await peakDuring(
      uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(64 * MIB, ctx.block), 16, 16),
    );
    line('peak during 16 × 64 MiB uploads', out.uploadPeak);
    await drain(ctx);
    ctx.bench.removeLeakedUploadFiles();
    out.downloadPeak = await peakDuring(downloads(ctx, '/profile/dl-64m', 64 * MIB, 16, 32));
    line('peak during 32 × 64 MiB downloads', out.downloadPeak);
    await inspector.collectGarbage();
    out.afterGc = await inspector.memoryUsage();
    line('afterwards, after a full GC', out.afterGc);
  } finally {
    inspector.close();
  }
  ctx.report.memoryAnatomy = out;
}

/**
 * 7. RSS and CPU of a fresh gateway, as apps/gateway/bin/gateway starts it and with one of its settings changed,
 * each on a fresh process: idle, during 16 × 64 MiB uploads and 32 × 64 MiB downloads.
 */
async function rssVariants(ctx: Profiler) {
  ctx.out(
    '\n## 7. Gateway RSS (MiB) and CPU (s), fresh process each: idle │ 16 × 64 MiB uploads │ 32 × 64 MiB downloads',
  );
  const variants: [string, Record<string, string>][] = [
    ['as started (apps/gateway/bin/gateway)', {}],
    ["glibc malloc's own thresholds", { GLIBC_TUNABLES: '' }],
    ['+ --max-old-space-size=96', { NODE_OPTIONS: '--max-old-space-size=96' }],
  ];
  await writeDownloadFixtures(ctx);
  const out: Record<string, unknown> = {};
  for (const [label, env] of variants) {
    await ctx.bench.restartGateway(env);
    const pid = ctx.bench.processes().gateway ?? 0;
    const idle = readMemory(pid)?.rssBytes ?? Number.NaN;
    const cpuAtStart = cpuSecondsOf(pid) ?? Number.NaN;
    const upSampler = sampleMemory(pid);
    const up = await uploads(ctx.bench.endpoints.gateway, ctx, createUploadBody(64 * MIB, ctx.block), 16, 16);
    const upPeak = upSampler.stop();
    const upCpu = (cpuSecondsOf(pid) ?? Number.NaN) - cpuAtStart;
    await drain(ctx);
    ctx.bench.removeLeakedUploadFiles();
    const cpuBeforeDownloads = cpuSecondsOf(pid) ?? Number.NaN;
    const downSampler = sampleMemory(pid);
    const down = await downloads(ctx, '/profile/dl-64m', 64 * MIB, 16, 32);
    const downPeak = downSampler.stop();
    const downCpu = (cpuSecondsOf(pid) ?? Number.NaN) - cpuBeforeDownloads;
    const peak = (m: typeof upPeak) => Math.max(m.sampledPeakBytes, m.hwmBytes);
    ctx.out(
      `${label.padEnd(40)} ${mib(idle).padStart(4)} │ ${mib(peak(upPeak)).padStart(4)}, ${upCpu.toFixed(1)} s CPU ` +
        `(${(up.wallMs / 1000).toFixed(1)} s) │ ${mib(peak(downPeak)).padStart(4)}, ${downCpu.toFixed(1)} s CPU ` +
        `(${(down.wallMs / 1000).toFixed(1)} s)${up.errors + down.errors ? ' errors!' : ''}`,
    );
    out[label] = {
      idleBytes: idle,
      uploadPeakBytes: peak(upPeak),
      downloadPeakBytes: peak(downPeak),
      uploadCpuSeconds: upCpu,
      downloadCpuSeconds: downCpu,
      uploadMs: up.wallMs,
      downloadMs: down.wallMs,
    };
  }
  await ctx.bench.restartGateway();
  ctx.report.rssVariants = out;
}

async function main(): Promise<number> {
  const benchDir = join(repoRoot, '.cring', 'bench');
  const runDir = join(benchDir, 'profile-run');
  rmSync(runDir, { recursive: true, force: true });
  let bench: BenchCluster;
  try {
    // Unconfined: under Node's permission model --cpu-prof writes no profile at all.
    bench = await startBenchCluster({ runDir, confineCentral: false });
  } catch (err) {
    console.error(`the cluster did not start: ${(err as Error).message}`);
    return 1;
  }
  const ctx: Profiler = { bench, block: randomBytes(MIB), out: (line = '') => console.log(line), report: {} };
  try {
    await uploads(bench.endpoints.gateway, ctx, createUploadBody(16, ctx.block), 1, 1); // account sync
    await drain(ctx);
    const sections: [string, () => Promise<void>][] = [
      ['breakdown', () => writeBreakdown(ctx, runDir)],
      ['round-trips', () => writeRoundTrips(ctx)],
      ['overlap', () => replicationOverlap(ctx)],
      ['rewrite-lock', () => rewriteLock(ctx)],
      ['cpu-per-process', () => cpuPerProcess(ctx)],
      ['cpu-profiles', () => cpuProfiles(ctx, join(benchDir, 'profiles'))],
      ['memory', () => memoryAnatomy(ctx)],
      ['rss', () => rssVariants(ctx)],
    ];
    // PROFILE_SECTIONS=cpu-profiles,memory runs only those sections (a focused look between full runs).
    const only = process.env.PROFILE_SECTIONS?.split(',').map((s) => s.trim());
    for (const [name, run] of sections) if (!only || only.includes(name)) await run();
  } catch (err) {
    console.error(`the profile stopped early: ${(err as Error).stack ?? err}`);
  } finally {
    await bench.stop();
    removeRunData(runDir);
  }
  writeFileSync(join(benchDir, 'profile.json'), `${JSON.stringify(ctx.report, null, 2)}\n`);
  console.error(`wrote ${join(benchDir, 'profile.json')}`);
  return 0;
}

process.exit(await main());
