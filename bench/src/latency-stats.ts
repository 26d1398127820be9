const MIB = 1024 * 1024;

/** The nearest-rank percentile (p in 0..100) of unsorted values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] as number;
}

export interface ThroughputSummary {
  /** Successful operations. */
  ok: number;
  opsPerSec: number;
  /** File bytes (not framing) moved per second, in MiB. */
  mibPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

/** Throughput over the wall time of a whole phase, latency percentiles over its successful operations. */
export function summarize(
  latenciesMs: readonly number[],
  wallMs: number,
  fileBytes: number,
): ThroughputSummary {
  const ok = latenciesMs.length;
  const seconds = wallMs / 1000;
  return {
    ok,
    opsPerSec: seconds > 0 ? ok / seconds : Number.NaN,
    mibPerSec: seconds > 0 ? (ok * fileBytes) / MIB / seconds : Number.NaN,
    p50Ms: percentile(latenciesMs, 50),
    p99Ms: percentile(latenciesMs, 99),
  };
}

/** a / b, or undefined when either side is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0)
    return undefined;
  return a / b;
}
