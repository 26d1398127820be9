import { EventEmitter } from 'node:events';
import type { DiskSpace } from '@cring/agent-protocol';
import type { Backend } from '@cring/charm';
import { probeHttp, probeSsh } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';

export interface BackendHealth {
  http: boolean;
  ssh: boolean;
  /** When this view was last set, by a probe round or a reported failure (epoch ms; 0 = never checked). */
  checkedAt: number;
  lastError?: string;
  /** Its data volume as its agent last reported it; undefined when no agent is configured or it did not answer. */
  space?: DiskSpace;
}

export type Probe = (backend: Backend, timeoutMs: number) => Promise<void>;

export interface HealthMonitor {
  /** Current view; a backend never checked yet counts as healthy (optimistic start). */
  health(name: string): BackendHealth;
  isHttpHealthy(name: string): boolean;
  isSshHealthy(name: string): boolean;
  /** False only while the backend's agent reports it under its free-space reserve (unknown counts as room). */
  hasSpace(name: string): boolean;
  /** The account primary: the first backend in configured order whose SSH is healthy; undefined when none. */
  accountPrimary(): Backend | undefined;
  /** SSH candidates for a new connection: SSH-healthy backends first, then the rest, each in configured order. */
  sshCandidates(): Backend[];
  /** Passive signal from request paths: a transport error to this backend's HTTP API marks it unhealthy until the next successful probe. */
  reportHttpFailure(name: string, err: unknown): void;
  /** Passive signal from the SSH pass-through: a failed connect marks SSH unhealthy until the next successful probe. */
  reportSshFailure(name: string, err: unknown): void;
  /** Runs one probe round now (all backends in parallel) and resolves when done. */
  checkNow(): Promise<void>;
  /** Probes every intervalMs (setInterval, unref'd). */
  start(): void;
  /** Safe to call twice; waits for an in-flight round. */
  stop(): Promise<void>;
  /** Emitted when http, ssh or being under the free-space reserve flips. */
  on(event: 'change', listener: (name: string, health: BackendHealth) => void): void;
}

export interface HealthMonitorOptions {
  backends: readonly Backend[];
  logger: Logger;
  intervalMs?: number;
  timeoutMs?: number;
  probeHttp?: Probe;
  probeSsh?: Probe;
  /** Reads a backend's free space from its agent (only for backends with one). */
  diskSpace?: (backend: Backend, timeoutMs: number) => Promise<DiskSpace | undefined> | undefined;
}

// An injected probe that ignores its timeout still cannot hold a round (or stop()) for longer than this.
const PROBE_GRACE_MS = 1_000;

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const { backends, intervalMs = 5_000, timeoutMs = 3_000 } = options;
  const probes = { http: options.probeHttp ?? probeHttp, ssh: options.probeSsh ?? probeSsh };
  const log = options.logger.child({ component: 'health' });
  const events = new EventEmitter();
  const states = new Map<string, BackendHealth>(
    backends.map((b) => [b.name, Object.freeze({ http: true, ssh: true, checkedAt: 0 })]),
  );
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let stopping: Promise<void> | undefined;

  function current(name: string): BackendHealth {
    const state = states.get(name);
    if (!state) throw new RangeError(`unknown backend "${name}"`);
    return state;
  }

  function set(name: string, next: BackendHealth): void {
    const previous = current(name);
    states.set(name, Object.freeze(next));
    const wasFull = previous.space?.underReserve ?? false;
    const isFull = next.space?.underReserve ?? false;
    if (wasFull !== isFull) {
      log.warn(
        { backend: name, freeBytes: next.space?.freeBytes, reserveBytes: next.space?.reserveBytes },
        isFull
          ? 'backend under its free-space reserve: no new writes or repairs go to it'
          : 'backend has room again',
      );
    }
    if (previous.http === next.http && previous.ssh === next.ssh && wasFull === isFull) return;
    log.info(
      { backend: name, http: next.http, ssh: next.ssh, err: next.lastError },
      'backend health changed',
    );
    try {
      events.emit('change', name, current(name));
    } catch (err) {
      log.error({ err, backend: name }, 'a health change listener threw');
    }
  }

  async function runProbe(probe: Probe, backend: Backend): Promise<Error | undefined> {
    let guard: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        probe(backend, timeoutMs),
        new Promise<never>((_, reject) => {
          guard = setTimeout(
            () => reject(new Error(`probe gave no answer within ${timeoutMs + PROBE_GRACE_MS} ms`)),
            timeoutMs + PROBE_GRACE_MS,
          );
        }),
      ]);
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    } finally {
      clearTimeout(guard);
    }
  }

  async function readSpace(backend: Backend): Promise<DiskSpace | undefined> {
    let space: DiskSpace | undefined;
    const failed = await runProbe(async (b, ms) => {
      space = await options.diskSpace?.(b, ms);
    }, backend);
    if (failed)
      log.debug({ backend: backend.name, err: failed.message }, 'no free-space answer from its agent');
    return failed ? undefined : space;
  }

  async function checkBackend(backend: Backend): Promise<void> {
    const [httpErr, sshErr, space] = await Promise.all([
      runProbe(probes.http, backend),
      runProbe(probes.ssh, backend),
      readSpace(backend),
    ]);
    const errors = [httpErr && `http: ${httpErr.message}`, sshErr && `ssh: ${sshErr.message}`].filter(
      Boolean,
    );
    const next: BackendHealth = { http: !httpErr, ssh: !sshErr, checkedAt: Date.now() };
    if (space) next.space = space;
    if (errors.length > 0) next.lastError = errors.join('; ');
    set(backend.name, next);
  }

  async function runRound(): Promise<void> {
    await Promise.all(backends.map((backend) => checkBackend(backend)));
  }

  function checkNow(): Promise<void> {
    // Rounds never overlap: a request made during a round gets a fresh round after it, never stale results.
    const round = (inFlight ?? Promise.resolve()).then(runRound);
    inFlight = round;
    void round.finally(() => {
      if (inFlight === round) inFlight = undefined;
    });
    return round;
  }

  function report(name: string, probe: 'http' | 'ssh', err: unknown): void {
    const state = states.get(name);
    if (!state) {
      log.warn({ backend: name, err }, 'failure reported for an unknown backend');
      return;
    }
    set(name, {
      ...state,
      http: probe === 'http' ? false : state.http,
      ssh: probe === 'ssh' ? false : state.ssh,
      checkedAt: Date.now(),
      lastError: `${probe}: ${message(err)}`,
    });
  }

  return {
    health: current,
    isHttpHealthy: (name) => current(name).http,
    isSshHealthy: (name) => current(name).ssh,
    hasSpace: (name) => !current(name).space?.underReserve,
    accountPrimary: () => backends.find((b) => current(b.name).ssh),
    sshCandidates() {
      const healthy = backends.filter((b) => current(b.name).ssh);
      return [...healthy, ...backends.filter((b) => !current(b.name).ssh)];
    },
    reportHttpFailure: (name, err) => report(name, 'http', err),
    reportSshFailure: (name, err) => report(name, 'ssh', err),
    checkNow,
    start() {
      if (timer || stopping) return;
      timer = setInterval(() => {
        // A slow round delays the next tick's round instead of piling rounds up.
        if (!inFlight) void checkNow();
      }, intervalMs);
      timer.unref();
    },
    stop() {
      stopping ??= (async () => {
        clearInterval(timer);
        timer = undefined;
        while (inFlight) await inFlight;
      })();
      return stopping;
    },
    on(event, listener) {
      events.on(event, listener);
    },
  };
}
