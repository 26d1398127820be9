/**
 * Read ahead: a file read's GET leaves for one backend as soon as the request is checked, while the manifest is
 * still being asked, so the backend's round trip overlaps Redis's instead of following it. It goes to the user's
 * healthy owner the read balancer ranks first (fewest reads in flight, then preference order): once every owner
 * holds the current version, that is a backend the plan lets answer. Whether its answer stands is decided by the
 * plan, once read (gateway README, "Read ahead"):
 *
 * | the plan says the backend is                                                   | its early answer             |
 * | ------------------------------------------------------------------------------ | ---------------------------- |
 * | a healthy holder of the current version with nothing pending (interchangeable)  | may be used                  |
 * | the first candidate (no current file: a listing, a tombstone, a path not known) | may be used                  |
 * | anything else: not a holder, behind, touched by a failed write; no plan at all  | discarded unread             |
 *
 * An answer that may be used is relayed only when the read rules let its 200 be relayed as it is; anything else
 * (a 404, a 5xx, another size, bytes no write acknowledged) is discarded, and the backend is asked again in its
 * turn. Misses, read repairs and relayed errors are so decided on answers read after the plan, as without it. A
 * request that failed (refused, reset, timed out) is that backend's failure: it is not asked a second time.
 */
import type { Backend } from '@cring/charm';
import type { BackendAnswer } from '../backends/socket-reads.ts';
import type { ReadBalancer } from './read-balancer.ts';

export interface ReadAhead {
  readonly backend: Backend;
  /** The early answer or the request's error, handed out once (undefined after that, or once discarded). */
  take(): Promise<BackendAnswer | Error | undefined>;
  /** Closes the early answer's connection unless it was taken; safe to call more than once. */
  discard(): void;
}

/**
 * Reads in flight on this gateway from which none is sent ahead. A busy gateway waits on nothing the overlap would
 * save (other requests' work fills it), while reading ahead broke up its batches of Redis replies: 10 % more CPU
 * per 4 KiB read at 16 concurrent, no latency won.
 */
export const READ_AHEAD_MAX_IN_FLIGHT = 4;

/**
 * Where a read is sent before its plan is known: the healthy owner the balancer ranks first, if any; none while
 * READ_AHEAD_MAX_IN_FLIGHT reads are in flight already.
 */
export function readAheadTarget(
  owners: readonly Backend[],
  isHealthy: (name: string) => boolean,
  balancer: ReadBalancer,
): Backend | undefined {
  const busy = Object.values(balancer.inFlight()).reduce((sum, n) => sum + n, 0);
  if (busy >= READ_AHEAD_MAX_IN_FLIGHT) return undefined;
  return balancer.order(
    owners.filter((b) => isHealthy(b.name)),
    () => true,
  )[0];
}

/** Sends the early request; it counts as in flight for the balancer until its answer is over. */
export function startReadAhead(
  backend: Backend,
  send: () => Promise<BackendAnswer>,
  balancer: ReadBalancer,
): ReadAhead {
  const load = balancer.start(backend.name);
  const answer = send().then(
    (response) => {
      response.onFinished(() => load.finished());
      return response;
    },
    (err: unknown) => {
      load.finished();
      return err instanceof Error ? err : new Error(String(err));
    },
  );
  let settled = false;
  return {
    backend,
    take() {
      if (settled) return Promise.resolve(undefined);
      settled = true;
      return answer;
    },
    discard() {
      if (settled) return;
      settled = true;
      void answer.then((response) => {
        if (!(response instanceof Error)) response.destroy();
      });
    },
  };
}

/**
 * Whether the plan lets the backend read ahead answer: it is among the candidates (not excluded as touched by a
 * failed write) and is either one of the interchangeable holders the balancer may pick, or the first candidate.
 */
export function mayUseReadAhead(
  backend: string,
  candidates: readonly { name: string }[],
  interchangeable: (name: string) => boolean,
): boolean {
  if (!candidates.some((c) => c.name === backend)) return false;
  return interchangeable(backend) || candidates[0]?.name === backend;
}
