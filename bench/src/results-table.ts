import { ratio } from './latency-stats.ts';

export type PathName = 'direct' | 'tcp-proxy' | 'gateway';

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
  target?: string;
  met?: boolean;
  note?: string;
}

/** Fills each non-direct row's ratios from the direct row with the same phase, size and concurrency. */
export function addRatios(rows: ResultRow[]): void {
  for (const row of rows) {
    if (row.path === undefined || row.path === 'direct') continue;
    const direct = rows.find(
      (r) =>
        r.path === 'direct' &&
        r.phase === row.phase &&
        r.size === row.size &&
        r.concurrency === row.concurrency,
    );
    if (!direct) continue;
    row.vsDirect = {
      throughput: ratio(row.opsPerSec, direct.opsPerSec),
      p50: ratio(row.p50Ms, direct.p50Ms),
      p99: ratio(row.p99Ms, direct.p99Ms),
    };
  }
}

export const RSS_LIMIT_MIB = 200;

/** The targets, set on the gateway rows they apply to. */
export function applyTargets(rows: ResultRow[]): void {
  for (const row of rows) {
    if (row.path !== 'gateway') continue;
    if (row.phase === 'upload' && row.size === '64 MiB') {
      row.target = '≥0.8× MiB/s';
      row.met = (row.vsDirect?.throughput ?? 0) >= 0.8;
    } else if (row.phase === 'upload' && row.size === '4 KiB') {
      row.target = '≤1.5× p50';
      row.met = row.vsDirect?.p50 !== undefined && row.vsDirect.p50 <= 1.5;
    } else if (row.phase === 'download') {
      row.target = '≥0.9× MiB/s';
      row.met = (row.vsDirect?.throughput ?? 0) >= 0.9;
    } else if (row.phase.startsWith('gateway peak RSS') || row.phase === 'upload 1 GiB') {
      row.target = `RSS <${RSS_LIMIT_MIB} MiB`;
      row.met = row.gatewayRssMiB !== undefined && row.gatewayRssMiB < RSS_LIMIT_MIB;
    }
  }
}

const fixed = (value: number | undefined, digits: number) =>
  value === undefined || !Number.isFinite(value) ? '' : value.toFixed(digits);
const auto = (value: number | undefined) =>
  value === undefined || !Number.isFinite(value) ? '' : fixed(value, value >= 100 ? 0 : value >= 10 ? 1 : 2);
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
