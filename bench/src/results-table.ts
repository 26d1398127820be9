import { ratio } from './latency-stats.ts';

/** The paths with one endpoint each. */
export type HopPath = 'direct' | 'tcp-proxy' | 'gateway';
/**
 * fan-out (uploads only): the load generator itself writes every backend and S3 in parallel, no gateway between:
 * the work any gateway that keeps three copies and a backup causes, so its ratio is this machine's ceiling.
 */
export type PathName = HopPath | 'fan-out';

/** One line of the table; blank cells are undefined. Ratios are against the direct row of the same measurement. */
export interface ResultRow {
  phase: string;
  size: string;
  concurrency?: number;
  path?: PathName;
  /** Successful operations, and failed ones. */
  n?: number;
  errors?: number;
  opsPerSec?: number;
  mibPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  vsDirect?: { throughput?: number; p50?: number; p99?: number };
  /** Peak resident set of the gateway during this row's work (sampled VmRSS, or VmHWM when higher). */
  gatewayRssMiB?: number;
  /** How long the replicator took to drain what this row's work enqueued. */
  drainSeconds?: number;
  /** CPU milliseconds per operation of each process group (the drain after the row included), and the sum. */
  cpuMsPerOp?: Record<CpuGroup | 'total', number>;
  target?: string;
  met?: boolean;
  note?: string;
}

/** The row of `path` measured with the same phase, size and concurrency as `row`. */
const sameMeasurement = (rows: readonly ResultRow[], row: ResultRow, path: PathName) =>
  rows.find(
    (r) =>
      r.path === path && r.phase === row.phase && r.size === row.size && r.concurrency === row.concurrency,
  );

/** Fills each non-direct row's ratios from the direct row with the same phase, size and concurrency. */
export function addRatios(rows: ResultRow[]): void {
  for (const row of rows) {
    if (row.path === undefined || row.path === 'direct') continue;
    const direct = sameMeasurement(rows, row, 'direct');
    if (!direct) continue;
    row.vsDirect = {
      throughput: ratio(row.opsPerSec, direct.opsPerSec),
      p50: ratio(row.p50Ms, direct.p50Ms),
      p99: ratio(row.p99Ms, direct.p99Ms),
    };
  }
}

export const RSS_LIMIT_MIB = 200;
export const IDLE_RSS_LIMIT_MIB = 100;
export const CPU_PER_SMALL_WRITE_LIMIT_MS = 4;

/**
 * The processes whose CPU per operation the table shows, in its column order; backends are summed, each with the
 * agent beside it (`charmN-agent`: it sets replicas' modification times, a cost of every replication).
 */
export const CPU_GROUPS = ['gateway', 'replicator', 'backends', 's3', 'redis'] as const;
export type CpuGroup = (typeof CPU_GROUPS)[number];
/** A backend host's processes: its charm server and its agent. */
export const BACKEND_HOST_PROCESS = /^charm\d+(-agent)?$/;

/** CPU seconds per process name (charm1..N, gateway, …) → milliseconds per operation per group, and their sum. */
export function cpuPerOperation(
  seconds: Record<string, number>,
  operations: number,
): Record<CpuGroup | 'total', number> {
  const out = { gateway: 0, replicator: 0, backends: 0, s3: 0, redis: 0, total: 0 };
  for (const [name, value] of Object.entries(seconds)) {
    const group: CpuGroup | undefined = BACKEND_HOST_PROCESS.test(name)
      ? 'backends'
      : (CPU_GROUPS as readonly string[]).includes(name)
        ? (name as CpuGroup)
        : undefined;
    if (!group) continue; // the load generator and the tcp-proxy are not part of any path's cost
    const ms = (value * 1000) / operations;
    out[group] += ms;
    out.total += ms;
  }
  return out;
}

type Metric = 'throughput' | 'p50';
interface Target {
  phase: string;
  size?: string;
  concurrency?: number;
  metric: Metric;
  /** At least (throughput) or at most (latency) this multiple of the direct row. */
  ratio: number;
}

/** The targets of issue 13, as ratios to direct measured in the same run. */
const TARGETS: Target[] = [
  { phase: 'upload', size: '4 KiB', concurrency: 1, metric: 'p50', ratio: 2.5 },
  { phase: 'upload', size: '4 KiB', concurrency: 16, metric: 'throughput', ratio: 0.35 },
  { phase: 'upload', size: '1 MiB', concurrency: 1, metric: 'throughput', ratio: 0.45 },
  { phase: 'upload', size: '64 MiB', concurrency: 1, metric: 'throughput', ratio: 0.65 },
  { phase: 'upload', size: '64 MiB', concurrency: 16, metric: 'throughput', ratio: 0.55 },
  { phase: 'upload 1 GiB', metric: 'throughput', ratio: 0.5 },
  { phase: 'download', metric: 'throughput', ratio: 0.9 },
];

/**
 * The path measured beside a gateway row that bounds it on this machine: uploads that keep every copy cannot beat
 * writing them all with no gateway (fan-out), a download cannot beat one plain extra hop (tcp-proxy). The gateway
 * answers at two copies and its row leaves the rest to the untimed drain, so a row of few large uploads (the 1 GiB
 * one above all) can beat fan-out.
 */
const CEILINGS: { phase: RegExp; path: PathName; what: string; short: string }[] = [
  {
    phase: /^upload/,
    path: 'fan-out',
    what: 'the client writing every backend and S3 itself, no gateway',
    short: 'with no gateway at all, a write that keeps 3 copies and a backup',
  },
  {
    phase: /^download$/,
    path: 'tcp-proxy',
    what: 'one plain extra hop, no work',
    short: 'a hop that only relays bytes',
  },
];

/** The targets, set on the gateway rows they apply to, each with the ratio of the path that bounds it. */
export function applyTargets(rows: ResultRow[]): void {
  for (const row of rows) {
    if (row.path !== 'gateway') continue;
    if (row.phase.startsWith('gateway peak RSS')) {
      row.target = `<${RSS_LIMIT_MIB} MiB`;
      row.met = row.gatewayRssMiB !== undefined && row.gatewayRssMiB < RSS_LIMIT_MIB;
      continue;
    }
    const target = TARGETS.find(
      (t) =>
        t.phase === row.phase &&
        (t.size === undefined || t.size === row.size) &&
        (t.concurrency === undefined || t.concurrency === row.concurrency),
    );
    if (!target) continue;
    const ratioOf = (r: ResultRow | undefined) =>
      target.metric === 'p50' ? r?.vsDirect?.p50 : r?.vsDirect?.throughput;
    const meets = (value: number | undefined) =>
      value !== undefined && (target.metric === 'p50' ? value <= target.ratio : value >= target.ratio);
    const value = ratioOf(row);
    row.target = target.metric === 'p50' ? `≤${target.ratio}× p50` : `≥${target.ratio}× thr`;
    row.met = meets(value);
    const bound = CEILINGS.find((c) => c.phase.test(row.phase));
    const ceiling = bound && ratioOf(sameMeasurement(rows, row, bound.path));
    if (bound && ceiling !== undefined) {
      row.note =
        `${bound.path} (${bound.what}) reached ${ceiling.toFixed(2)}×` +
        (meets(ceiling) ? '' : `: ${bound.short} missed the target in this run`);
    }
    if (row.phase === 'upload 1 GiB') {
      row.target += `, RSS <${RSS_LIMIT_MIB} MiB`;
      row.met = row.met && row.gatewayRssMiB !== undefined && row.gatewayRssMiB < RSS_LIMIT_MIB;
    }
  }
}

/**
 * The rows the issue's table has beyond single measurements: the gateway's peak RSS over every row, its idle RSS,
 * and the CPU of one 4 KiB write with its replication drained (summed over every process).
 */
export function summaryRows(rows: readonly ResultRow[], idleRssMiB: readonly number[]): ResultRow[] {
  const out: ResultRow[] = [];
  const gatewayRss = rows.flatMap((r) =>
    r.path === 'gateway' && r.gatewayRssMiB !== undefined ? [r.gatewayRssMiB] : [],
  );
  const rssRow = (phase: string, mib: number, limit: string, met: boolean): ResultRow => ({
    phase,
    size: '',
    path: 'gateway',
    gatewayRssMiB: mib,
    target: limit,
    met,
  });
  if (gatewayRss.length > 0) {
    const peak = Math.max(...gatewayRss);
    out.push(rssRow('gateway peak RSS, any row', peak, `<${RSS_LIMIT_MIB} MiB`, peak < RSS_LIMIT_MIB));
  }
  if (idleRssMiB.length > 0) {
    const idle = Math.max(...idleRssMiB);
    out.push(
      rssRow(
        'gateway idle RSS (fresh process)',
        idle,
        `≤${IDLE_RSS_LIMIT_MIB} MiB`,
        idle <= IDLE_RSS_LIMIT_MIB,
      ),
    );
  }
  const small = rows.find(
    (r) => r.phase === 'upload' && r.size === '4 KiB' && r.concurrency === 16 && r.path === 'gateway',
  );
  if (small?.cpuMsPerOp) {
    out.push({
      phase: 'CPU per 4 KiB write, drain incl.',
      size: '4 KiB',
      concurrency: 16,
      path: 'gateway',
      n: small.n,
      cpuMsPerOp: small.cpuMsPerOp,
      target: `≤${CPU_PER_SMALL_WRITE_LIMIT_MS} ms`,
      met: small.cpuMsPerOp.total <= CPU_PER_SMALL_WRITE_LIMIT_MS,
    });
  }
  return out;
}

const fixed = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value) ? '' : value.toFixed(digits);
const auto = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '' : fixed(value, value >= 100 ? 0 : value >= 10 ? 1 : 2);
const cpuCell = (value: number | undefined) =>
  value === undefined ? '' : value >= 10 ? value.toFixed(0) : value.toFixed(value >= 1 ? 1 : 2);
const times = (value: number | undefined) => (value === undefined ? '' : `${value.toFixed(2)}×`);

const COLUMNS: { title: string; left?: boolean; cell: (row: ResultRow) => string }[] = [
  { title: 'phase', left: true, cell: (r) => r.phase },
  { title: 'size', cell: (r) => r.size },
  { title: 'conc', cell: (r) => (r.concurrency === undefined ? '' : String(r.concurrency)) },
  { title: 'path', left: true, cell: (r) => r.path ?? '' },
  {
    title: 'n',
    cell: (r) => (r.n === undefined ? '' : `${r.n}${r.errors ? ` (${r.errors} err)` : ''}`),
  },
  { title: 'ops/s', cell: (r) => auto(r.opsPerSec) },
  { title: 'MiB/s', cell: (r) => auto(r.mibPerSec) },
  { title: 'p50 ms', cell: (r) => auto(r.p50Ms) },
  { title: 'p99 ms', cell: (r) => auto(r.p99Ms) },
  { title: 'thr×dir', cell: (r) => times(r.vsDirect?.throughput) },
  { title: 'p50×dir', cell: (r) => times(r.vsDirect?.p50) },
  { title: 'p99×dir', cell: (r) => times(r.vsDirect?.p99) },
  { title: 'gw RSS MiB', cell: (r) => fixed(r.gatewayRssMiB, 0) },
  { title: 'drain s', cell: (r) => fixed(r.drainSeconds, 1) },
  {
    title: 'CPU ms/op gw·rep·be·s3·rds',
    cell: (r) => (r.cpuMsPerOp ? CPU_GROUPS.map((g) => cpuCell(r.cpuMsPerOp?.[g])).join(' ') : ''),
  },
  { title: 'CPU ms/op', cell: (r) => cpuCell(r.cpuMsPerOp?.total) },
  { title: 'target', left: true, cell: (r) => r.target ?? '' },
  { title: 'met?', left: true, cell: (r) => (r.met === undefined ? '' : r.met ? 'yes' : 'NO') },
];

/** The rows as one plain-text table; a rule between groups of rows (a change of phase and size). */
export function formatTable(rows: readonly ResultRow[]): string {
  const cells = rows.map((row) => COLUMNS.map((column) => column.cell(row)));
  const widths = COLUMNS.map((column, i) =>
    Math.max(column.title.length, ...cells.map((line) => (line[i] as string).length)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) =>
        COLUMNS[i]?.left ? value.padEnd(widths[i] as number) : value.padStart(widths[i] as number),
      )
      .join(' │ ')
      .trimEnd();
  const rule = widths.map((w) => '─'.repeat(w)).join('─┼─');
  const out = [line(COLUMNS.map((c) => c.title)), rule];
  rows.forEach((row, i) => {
    const previous = rows[i - 1];
    if (previous && (previous.phase !== row.phase || previous.size !== row.size)) out.push(rule);
    out.push(line(cells[i] as string[]));
  });
  return out.join('\n');
}
