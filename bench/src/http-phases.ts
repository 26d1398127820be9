import { execFileSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import type { BenchCluster } from './bench-cluster.ts';
import { getDownload, type LoadResult, type OperationTiming, postUpload, runLoad } from './http-load.ts';
import { percentile, summarize } from './latency-stats.ts';
import { meterCpu } from './process-cpu.ts';
import { waitForDrain } from './replication-drain.ts';
import type { HopPath, PathName, ResultRow } from './results-table.ts';
import { type MemoryPeak, sampleMemory } from './rss-sampler.ts';
import { createUploadBody, fileSha256, type UploadBody } from './upload-body.ts';

const MIB = 1024 * 1024;

export const PATHS: readonly HopPath[] = ['direct', 'tcp-proxy', 'gateway'];
/** Uploads also measure the fan-out path (results-table.ts), right before the gateway. */
const UPLOAD_PATHS: readonly PathName[] = ['direct', 'tcp-proxy', 'fan-out', 'gateway'];

export interface BenchSize {
  label: string;
  bytes: number;
  /** Measured operations per concurrency. */
  operations: Record<number, number>;
}

/** What every phase needs: the running cluster, the repeated block bodies are made of, the drain limit, a log. */
export interface PhaseContext {
  bench: BenchCluster;
  block: Buffer;
  drainTimeoutMs: number;
  log: (message: string) => void;
}

/** Extra figures kept in results.json but not in the table. */
export interface RowDetail {
  row: ResultRow;
  /** Uploads: p50 of the time until the last body byte was written (≈ when the receiver had read the body). */
  bodySentP50Ms?: number;
  memory?: MemoryPeak;
  drainDrained?: boolean;
  /** CPU seconds per process during the measured run, and during the drain after it. */
  cpuSeconds?: Record<string, number>;
  drainCpuSeconds?: Record<string, number>;
  firstError?: string;
}

const slug = (label: string) => label.replace(/\s+/g, '').toLowerCase();

export const peakMiB = (memory: MemoryPeak) =>
  Math.max(memory.sampledPeakBytes, Number.isFinite(memory.hwmBytes) ? memory.hwmBytes : 0) / MIB;

export function rowOf(
  phase: string,
  size: BenchSize,
  concurrency: number,
  path: PathName,
  result: LoadResult,
): RowDetail {
  const latencies = result.timings.map((t) => t.latencyMs);
  const summary = summarize(latencies, result.wallMs, size.bytes);
  const sent = result.timings.flatMap((t) => (t.bodySentMs === undefined ? [] : [t.bodySentMs]));
  return {
    row: {
      phase,
      size: size.label,
      concurrency,
      path,
      n: summary.ok,
      errors: result.errors,
      opsPerSec: summary.opsPerSec,
      mibPerSec: summary.mibPerSec,
      p50Ms: summary.p50Ms,
      p99Ms: summary.p99Ms,
    },
    bodySentP50Ms: sent.length > 0 ? percentile(sent, 50) : undefined,
    firstError: result.firstError,
  };
}

const drainOf = (ctx: PhaseContext) =>
  waitForDrain(ctx.bench.manifest, ctx.bench.charmId, { timeoutMs: ctx.drainTimeoutMs });

/** Runs a measured phase with the CPU time of every process of the run recorded. */
async function metered(ctx: PhaseContext, detail: () => Promise<RowDetail>): Promise<RowDetail> {
  const cpu = meterCpu(ctx.bench.processes());
  const out = await detail();
  out.cpuSeconds = cpu.stop();
  return out;
}

/** Runs a phase against the gateway with its memory sampled, then times the replicator's drain. */
async function onGateway(
  ctx: PhaseContext,
  detail: () => Promise<RowDetail>,
  drain: boolean,
): Promise<RowDetail> {
  const sampler = sampleMemory(ctx.bench.processes().gateway ?? 0);
  const out = await detail();
  out.memory = sampler.stop();
  out.row.gatewayRssMiB = peakMiB(out.memory);
  if (drain) {
    const cpu = meterCpu(ctx.bench.processes());
    const drained = await drainOf(ctx);
    out.row.drainSeconds = drained.ms / 1000;
    out.drainDrained = drained.drained;
    out.drainCpuSeconds = cpu.stop();
    if (!drained.drained) out.row.note = `${drained.left} jobs still pending after the drain timeout`;
  }
  return out;
}

/**
 * Bytes of uploads each path gets before an upload row is measured (at least one per worker, at most as many as
 * the row measures). The gateway restarts for each size, and its first small uploads cost it more CPU while V8
 * compiles the write path (profile:writes, 4 KiB ×1: 2.13 ms of gateway CPU per write in round 1, 1.37 in round 2).
 */
const UPLOAD_WARM_UP_BYTES = 64 * 1024 * 1024;

/**
 * Uploads of one size at one concurrency on every path: a warm-up (UPLOAD_WARM_UP_BYTES), then the
 * measured run. Every upload writes a new path: a rewrite of a path waits for the path lock that the replicator
 * holds while it copies the previous version (measured apart by `npm run profile`).
 */
export async function measureUploads(
  ctx: PhaseContext,
  size: BenchSize,
  concurrency: number,
): Promise<RowDetail[]> {
  const body: UploadBody = createUploadBody(size.bytes, ctx.block);
  const sha256 = fileSha256(size.bytes, ctx.block);
  const out: RowDetail[] = [];
  for (const path of UPLOAD_PATHS) {
    const token = ctx.bench.token();
    const remote = (round: string, index: number) =>
      `/bench/up/${path}/${slug(size.label)}-c${concurrency}/${round}-${index}`;
    const upload = (to: string) =>
      path === 'fan-out'
        ? fanOutUpload(ctx, to, token, body, sha256)
        : postUpload(ctx.bench.endpoints[path], to, token, body);
    const run = (round: string, operations: number) =>
      runLoad({ concurrency, operations, operation: (index) => upload(remote(round, index)) });
    ctx.log(`upload ${size.label} ×${concurrency} via ${path}`);
    const ops = size.operations[concurrency] ?? concurrency;
    await run('warm', Math.max(concurrency, Math.min(ops, Math.floor(UPLOAD_WARM_UP_BYTES / size.bytes))));
    if (path === 'gateway') await drainOf(ctx);
    ctx.bench.removeLeakedUploadFiles();
    const measure = () =>
      metered(ctx, async () => rowOf('upload', size, concurrency, path, await run('run', ops)));
    out.push(path === 'gateway' ? await onGateway(ctx, measure, true) : await measure());
    ctx.bench.removeLeakedUploadFiles();
  }
  return out;
}

/** One upload on the fan-out path: the same POST to every backend and the file's PUT to S3, all at once. */
async function fanOutUpload(
  ctx: PhaseContext,
  path: string,
  token: string,
  body: UploadBody,
  sha256: string,
): Promise<OperationTiming> {
  const started = performance.now();
  const { backends, backup } = ctx.bench.fanOut;
  await Promise.all([
    ...backends.map((endpoint) => postUpload(endpoint, path, token, body)),
    backup.put(ctx.bench.charmId, path, {
      body: Readable.from(body.fileChunks()),
      size: body.fileBytes,
      sha256,
      mode: 0o644,
      version: 1,
    }),
  ]);
  return { latencyMs: performance.now() - started };
}

/** The file every download phase of a size reads: written once through the gateway, on every owner. */
export const downloadPath = (size: BenchSize) => `/bench/dl/${slug(size.label)}`;

export async function writeDownloadFixture(ctx: PhaseContext, size: BenchSize): Promise<void> {
  const { endpoints, token } = ctx.bench;
  await postUpload(endpoints.gateway, downloadPath(size), token(), createUploadBody(size.bytes, ctx.block));
}

/**
 * Bytes of downloads each path gets before a download row is measured (at least one per worker, at most as many
 * as the row measures). The gateway restarts for each size, and the first downloads after a start often cost it
 * more CPU (profile:reads: 5.8 ms per 1 MiB download in round 1 against 1.9 in round 2); one warm-up download
 * per worker left that in the 1 MiB row's 40 measured ones. Not the only cause: some later runs stayed at 3.6.
 */
const DOWNLOAD_WARM_UP_BYTES = 256 * 1024 * 1024;

/** Downloads of one size at one concurrency on every path, after a warm-up (DOWNLOAD_WARM_UP_BYTES). */
export async function measureDownloads(
  ctx: PhaseContext,
  size: BenchSize,
  concurrency: number,
): Promise<RowDetail[]> {
  const out: RowDetail[] = [];
  for (const path of PATHS) {
    const endpoint = ctx.bench.endpoints[path];
    const token = ctx.bench.token();
    const run = (operations: number) =>
      runLoad({
        concurrency,
        operations,
        operation: () => getDownload(endpoint, downloadPath(size), token, size.bytes),
      });
    ctx.log(`download ${size.label} ×${concurrency} via ${path}`);
    const ops = size.operations[concurrency] ?? concurrency;
    await run(Math.max(concurrency, Math.min(ops, Math.floor(DOWNLOAD_WARM_UP_BYTES / size.bytes))));
    const measure = () =>
      metered(ctx, async () => rowOf('download', size, concurrency, path, await run(ops)));
    out.push(path === 'gateway' ? await onGateway(ctx, measure, false) : await measure());
  }
  return out;
}

/**
 * One big upload direct, on the fan-out path and through the gateway (memory sampled, drain timed). The remote
 * paths are no longer than the body's part filename: the replicator frames its copy with the path as filename,
 * and a longer framing would push a body at the 1 GiB limit over it.
 */
export async function measureBigUpload(ctx: PhaseContext, size: BenchSize): Promise<RowDetail[]> {
  const body = createUploadBody(size.bytes, ctx.block);
  const remote: Record<HopPath, string> = {
    direct: '/big/direct',
    'tcp-proxy': '/big/proxy',
    gateway: '/big/gw',
  };
  const once = (path: HopPath) =>
    runLoad({
      concurrency: 1,
      operations: 1,
      operation: () => postUpload(ctx.bench.endpoints[path], remote[path], ctx.bench.token(), body),
    });
  const phase = `upload ${size.label}`;
  ctx.log(`${phase} direct`);
  const direct = await metered(ctx, async () => rowOf(phase, size, 1, 'direct', await once('direct')));
  ctx.bench.removeLeakedUploadFiles();
  ctx.log(`${phase} fan-out`);
  const sha256 = fileSha256(size.bytes, ctx.block);
  const fanOut = await metered(ctx, async () =>
    rowOf(
      phase,
      size,
      1,
      'fan-out',
      await runLoad({
        concurrency: 1,
        operations: 1,
        operation: () => fanOutUpload(ctx, '/big/fan', ctx.bench.token(), body, sha256),
      }),
    ),
  );
  ctx.bench.removeLeakedUploadFiles();
  ctx.log(`${phase} via gateway`);
  const gateway = await onGateway(
    ctx,
    () => metered(ctx, async () => rowOf(phase, size, 1, 'gateway', await once('gateway'))),
    true,
  );
  ctx.bench.removeLeakedUploadFiles();
  return [direct, fanOut, gateway];
}

/** The gateway's established TCP connections to each backend's HTTP port (its keep-alive pools), from `ss`. */
function gatewayConnections(ctx: PhaseContext): string {
  const pid = ctx.bench.processes().gateway;
  try {
    const lines = execFileSync('ss', ['-Htnp', 'state', 'established'], { encoding: 'utf8' }).split('\n');
    return ctx.bench.cluster.backends
      .map(({ info }) => {
        const count = lines.filter(
          (line) => line.includes(`:${info.httpPort} `) && line.includes(`pid=${pid},`),
        ).length;
        return `${info.name} ${count}`;
      })
      .join(', ');
  } catch (err) {
    return `(ss failed: ${(err as Error).message})`;
  }
}

/** Requests the gateway sent to each backend so far, by backend (GETs only), from its own metrics. */
export async function backendGets(ctx: PhaseContext): Promise<Map<string, number>> {
  const response = await fetch(`http://127.0.0.1:${ctx.bench.cluster.gatewayPorts.adminPort}/metrics`);
  const text = await response.text();
  const out = new Map<string, number>();
  for (const match of text.matchAll(/^cring_backend_requests_total\{([^}]*)\} (\d+)/gm)) {
    const labels = match[1] as string;
    if (!labels.includes('method="GET"')) continue;
    const backend = /backend="([^"]+)"/.exec(labels)?.[1] ?? '?';
    out.set(backend, (out.get(backend) ?? 0) + Number(match[2]));
  }
  return out;
}

/** The read spread row downloads the fixtures of at most this size. */
export const SPREAD_MAX_BYTES = 1024 * 1024;

/**
 * 16 concurrent downloads of one user's files (every fixture, on every owner after the drain) through the
 * gateway: which backends served them. The note lists the requests per backend.
 */
export async function measureReadSpread(
  ctx: PhaseContext,
  sizes: readonly BenchSize[],
  operations: number,
): Promise<RowDetail> {
  const token = ctx.bench.token();
  const files = sizes.filter((s) => s.bytes <= SPREAD_MAX_BYTES);
  ctx.log(`download spread: 16 concurrent downloads of ${files.length} files of one user via gateway`);
  const before = await backendGets(ctx);
  const result = await runLoad({
    concurrency: 16,
    operations,
    operation: (index) => {
      const size = files[index % files.length] as BenchSize;
      return getDownload(ctx.bench.endpoints.gateway, downloadPath(size), token, size.bytes);
    },
  });
  const after = await backendGets(ctx);
  const connections = gatewayConnections(ctx);
  const perBackend = [...after]
    .map(([name, count]) => [name, count - (before.get(name) ?? 0)] as const)
    .sort(([a], [b]) => (a < b ? -1 : 1));
  const latencies = result.timings.map((t) => t.latencyMs);
  return {
    row: {
      phase: 'download spread (one user)',
      size: files.map((f) => f.label).join('+'),
      concurrency: 16,
      path: 'gateway',
      n: latencies.length,
      errors: result.errors,
      opsPerSec: latencies.length / (result.wallMs / 1000),
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      note:
        `requests per backend: ${perBackend.map(([name, count]) => `${name} ${count}`).join(', ')}; ` +
        `gateway's open connections per backend after it: ${connections}`,
    },
    firstError: result.firstError,
  };
}
