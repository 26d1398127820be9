/**
 * Which holder of a file's current version serves a read. Only the leading run of candidates the caller marks as
 * interchangeable (healthy holders of the current version with nothing pending: each has exactly the bytes the
 * last acknowledged write left) is reordered, so read-your-writes never depends on the choice. Within that run:
 * fewest requests in flight first, then preference order. A slow backend keeps its requests longer and so gets
 * fewer new ones (least outstanding requests adapts to latency by itself); with nothing in flight, reads keep
 * asking the first holder in preference order, so a copy it lost is still found and repaired on read.
 */
export interface ReadBalancer {
  /**
   * `candidates` with its leading interchangeable run ordered best first; the rest keeps its order. `own`: a
   * backend this read already has a request in flight to (read ahead), not counted against it here.
   */
  order<T extends { name: string }>(
    candidates: readonly T[],
    interchangeable: (name: string) => boolean,
    own?: string,
  ): T[];
  /** Marks a request to `backend` as started; `finished` ends it (a second call changes nothing). */
  start(backend: string): { finished(): void };
  /** Requests in flight per backend (for tests and metrics). */
  inFlight(): Record<string, number>;
}

export function createReadBalancer(): ReadBalancer {
  const inFlight = new Map<string, number>();
  return {
    order(candidates, interchangeable, own) {
      let run = 0;
      while (run < candidates.length && interchangeable((candidates[run] as { name: string }).name)) run++;
      if (run < 2) return [...candidates];
      const ranked = candidates.slice(0, run).map((candidate, preference) => ({
        candidate,
        preference,
        load: (inFlight.get(candidate.name) ?? 0) - (candidate.name === own ? 1 : 0),
      }));
      ranked.sort((a, b) => a.load - b.load || a.preference - b.preference);
      return [...ranked.map((r) => r.candidate), ...candidates.slice(run)];
    },
    start(backend) {
      inFlight.set(backend, (inFlight.get(backend) ?? 0) + 1);
      let finished = false;
      return {
        finished() {
          if (finished) return;
          finished = true;
          inFlight.set(backend, (inFlight.get(backend) ?? 1) - 1);
        },
      };
    },
    inFlight: () => Object.fromEntries(inFlight),
  };
}
