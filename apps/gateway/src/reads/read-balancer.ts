/**
 * Which holder of a file's current version serves a read (dynamic-snitch style). Only the leading run of
 * candidates the caller marks as interchangeable (healthy holders of the current version with nothing pending:
 * each has exactly the bytes the last acknowledged write left) is reordered, so read-your-writes never depends
 * on the choice. Within that run: fewest requests in flight first; then a backend clearly slower than the best
 * (recent latency, an exponentially weighted average of the time to the answer's head, above twice the best and
 * 5 ms more) goes last; then preference order. Small latency differences do not reorder, so sequential reads keep
 * asking the first holder in preference order (and a copy it lost is found and repaired, as without balancing).
 */
export interface ReadBalancer {
  /** `candidates` with its leading interchangeable run ordered best first; the rest keeps its order. */
  order<T extends { name: string }>(
    candidates: readonly T[],
    interchangeable: (name: string) => boolean,
  ): T[];
  /** Marks a request to `backend` as started; `answered` records its latency, `finished` ends it (call once). */
  start(backend: string): { answered(): void; finished(): void };
  /** Requests in flight and average latency per backend (for metrics and tests). */
  snapshot(): Record<string, { inFlight: number; latencyMs: number | undefined }>;
}

/** Weight of the newest sample in the latency average: about the last ten answers count. */
const LATENCY_WEIGHT = 0.1;
/** A backend is "clearly slower" above both this multiple of the best latency and the best plus this margin. */
const SLOW_FACTOR = 2;
const SLOW_MARGIN_MS = 5;

export function createReadBalancer(options: { nowMs?: () => number } = {}): ReadBalancer {
  const nowMs = options.nowMs ?? (() => performance.now());
  const stats = new Map<string, { inFlight: number; latencyMs: number | undefined }>();
  const statsOf = (backend: string) => {
    let entry = stats.get(backend);
    if (!entry) {
      entry = { inFlight: 0, latencyMs: undefined };
      stats.set(backend, entry);
    }
    return entry;
  };

  return {
    order(candidates, interchangeable) {
      let run = 0;
      while (run < candidates.length && interchangeable((candidates[run] as { name: string }).name)) run++;
      if (run < 2) return [...candidates];
      const ranked = candidates.slice(0, run).map((candidate, preference) => {
        const s = stats.get(candidate.name);
        return { candidate, preference, inFlight: s?.inFlight ?? 0, latencyMs: s?.latencyMs ?? 0 };
      });
      const best = Math.min(...ranked.map((r) => r.latencyMs));
      const slow = (latencyMs: number) =>
        latencyMs > SLOW_FACTOR * best && latencyMs > best + SLOW_MARGIN_MS ? 1 : 0;
      ranked.sort(
        (a, b) =>
          a.inFlight - b.inFlight || slow(a.latencyMs) - slow(b.latencyMs) || a.preference - b.preference,
      );
      return [...ranked.map((r) => r.candidate), ...candidates.slice(run)];
    },
    start(backend) {
      const entry = statsOf(backend);
      entry.inFlight++;
      const startedMs = nowMs();
      let answered = false;
      let finished = false;
      return {
        answered() {
          if (answered) return;
          answered = true;
          const sample = nowMs() - startedMs;
          entry.latencyMs =
            entry.latencyMs === undefined
              ? sample
              : entry.latencyMs + LATENCY_WEIGHT * (sample - entry.latencyMs);
        },
        finished() {
          if (finished) return;
          finished = true;
          entry.inFlight--;
        },
      };
    },
    snapshot() {
      return Object.fromEntries([...stats].map(([name, s]) => [name, { ...s }]));
    },
  };
}
