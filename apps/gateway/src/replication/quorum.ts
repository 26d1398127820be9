import type { Backend } from '@cring/charm';

export interface QuorumOutcome<T> {
  successes: { backend: Backend; value: T }[];
  /** `error` is what the attempt threw (a backend's own refusal can be relayed from it). */
  failures: { backend: string; reason: string; error?: unknown }[];
}

/**
 * Tries candidates in order with at most `needed` attempts in flight; a failed attempt hands its slot to the next
 * candidate (sloppy quorum). Stops starting attempts once `needed` succeeded or candidates run out.
 */
export async function runQuorum<T>(
  candidates: readonly Backend[],
  needed: number,
  attempt: (backend: Backend) => Promise<T>,
): Promise<QuorumOutcome<T>> {
  const outcome: QuorumOutcome<T> = { successes: [], failures: [] };
  let next = 0;
  let inFlight = 0;
  const lane = async () => {
    while (outcome.successes.length + inFlight < needed && next < candidates.length) {
      const backend = candidates[next++] as Backend;
      inFlight++;
      try {
        outcome.successes.push({ backend, value: await attempt(backend) });
      } catch (err) {
        outcome.failures.push({ backend: backend.name, reason: (err as Error).message, error: err });
      } finally {
        inFlight--;
      }
    }
  };
  await Promise.all(Array.from({ length: needed }, lane));
  return outcome;
}
