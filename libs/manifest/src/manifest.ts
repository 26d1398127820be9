import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { ancestorsOf, cleanFsPath, isWithin } from '@cring/charm';
import type { ChainableCommander, Redis } from 'ioredis';
import { hashInChunks, setInChunks } from './chunked-reads.ts';
import { decodeEntry, encodeEntry, type FileEntry, type ManifestEntry, type Tombstone } from './entries.ts';
import { manifestKeys as keys } from './keys.ts';
import { isOwnerGone } from './liveness.ts';
import {
  ACQUIRE_LOCK,
  CHECK_LOCK,
  CLEAR_INTENT,
  COMMIT_DELETE,
  COMMIT_WRITE,
  FINISH_SWEEP,
  LOCK_AND_OPEN_INTENT,
  LOCK_AND_READ,
  LOCK_LOST_REPLY,
  OPEN_INTENT,
  RAISE_SEQ_FLOOR,
  READ_PLAN,
  READ_ROUTE,
  RECORD_FAILED_INTENT,
  RELEASE_LOCK,
  REMOVE_TOMBSTONE,
  RENEW_LOCK,
  SWEEP_COVERED,
  UPDATE_HOLDER,
  UPDATE_INTENT,
} from './lua.ts';
import { hiddenBySweep, type Sweeps } from './sweeps.ts';

/** Entries looked at per HSCAN step and removed per script of a delete's sweep: bounds how long one step blocks Redis. */
export const SWEEP_CHUNK_ENTRIES = 500;

export class LockTimeoutError extends Error {
  constructor(path: string, waitedMs: number) {
    super(
      `another change to ${path} (or a path above or below it) is still in progress after ${waitedMs} ms`,
    );
    this.name = 'LockTimeoutError';
  }
}

/** The lock is gone, expired or held by another holder: whatever the old holder still does must not land. */
export class LockLostError extends Error {
  constructor(path: string, detail: string) {
    super(`the lock on ${path} was lost (${detail}); the change was not recorded`);
    this.name = 'LockLostError';
  }
}

export interface PathLock {
  readonly path: string;
  /** The lock's fencing token: the user's lock counter when it was taken, checked by every script that writes. */
  readonly fence: number;
  /** Aborted (with a LockLostError) once the lock is known lost: renewal refused, or failing past the TTL. */
  readonly signal: AbortSignal;
  /** Throws LockLostError unless Redis confirms the lock is still ours now (a check right before a write). */
  assertHeld(): Promise<void>;
  /** Releases the lock (stops renewing it); retried in the background while Redis is away. Safe to call twice. */
  release(): Promise<void>;
  /**
   * Keeps the lock held and renewed until `settled` ends, whenever `release()` is called: a step of this holder
   * that outlives the request (a refusal's record retried until Redis answers) must finish before anyone else,
   * the healer included, may judge the path. `release()` then returns at once and the lock goes back after it.
   */
  holdUntil(settled: Promise<unknown>): void;
}

/** A pipeline's answers in order; the first failed command's error is thrown. */
async function results(batch: ChainableCommander): Promise<unknown[]> {
  const answers = (await batch.exec()) ?? [];
  return answers.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}

/** The sweeps found at `ancestors` (an HMGET of the sweeps hash in that order). */
function sweepsAt(ancestors: readonly string[], versions: readonly (string | null)[]): Sweeps {
  const out = new Map<string, number>();
  versions.forEach((version, i) => {
    if (version !== null) out.set(ancestors[i] as string, Number(version));
  });
  return out;
}

/**
 * The governing entry of `path` from the entries and sweeps at its ancestors (`candidates`, from ancestorsOf): the
 * newest of its own file entry and the tombstones above it, leaving out what an unfinished sweep hides.
 */
function decideGoverning(
  path: string,
  candidates: readonly string[],
  raw: readonly (string | null)[],
  sweptAt: readonly (string | null)[],
): (ManifestEntry & { path: string }) | undefined {
  const sweeps = sweepsAt(candidates, sweptAt);
  let best: (ManifestEntry & { path: string }) | undefined;
  raw.forEach((json, i) => {
    if (!json) return;
    const entry = decodeEntry(json);
    const at = candidates[i] as string;
    // A file entry only governs its own path; an ancestor's file entry is stale and ignored.
    if (entry.kind === 'file' && at !== path) return;
    if (hiddenBySweep(at, entry, sweeps)) return;
    if (!best || entry.version > best.version) best = { ...entry, path: at };
  });
  return best;
}

/** Pending-marker fields ("<backend>|<jobId>") → the backends they name. */
function pendingBackendsOf(fields: readonly string[]): Set<string> {
  return new Set(fields.map((field) => field.slice(0, field.indexOf('|'))));
}

/** A write not acknowledged yet: what it may have changed, and the acknowledged state to roll back to. */
export interface WriteIntent {
  path: string;
  fence: number;
  atMs: number;
  owner: string;
  /** The path's own entry when the write began (undefined: the path was new, or only an ancestor's tombstone). */
  previous?: ManifestEntry;
  /** `failed`: the writer gave up and is rolling back; `writing`: in flight, or its writer died (lock gone). */
  state: 'writing' | 'failed';
  /** Backends the write sent bytes to (they may hold unacknowledged bytes). */
  touched: string[];
}

function decodeIntent(path: string, json: string): WriteIntent {
  const raw = JSON.parse(json) as {
    fence: number;
    at: number;
    owner: string;
    prev: string;
    state: 'writing' | 'failed';
    touched: unknown;
  };
  return {
    path,
    fence: raw.fence,
    atMs: raw.at,
    owner: raw.owner,
    previous: raw.prev ? decodeEntry(raw.prev) : undefined,
    state: raw.state,
    touched: Array.isArray(raw.touched) ? (raw.touched as string[]) : [],
  };
}

/** What a read needs from the manifest (see readPlan). */
export interface ReadPlan {
  governing: (ManifestEntry & { path: string }) | undefined;
  pending: Set<string>;
  intent: WriteIntent | undefined;
  /** The intent's writer still holds its lock: the write may still succeed. */
  intentInFlight: boolean;
}

/** Maps a script's LOCK_LOST refusal to LockLostError. */
async function fenced<T>(path: string, run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (err) {
    if ((err as Error)?.message?.includes(LOCK_LOST_REPLY))
      throw new LockLostError(path, 'a newer holder has it, or it expired');
    throw err;
  }
}

type ScriptRunner = (keys: string[], args: (string | number)[]) => Promise<unknown>;

function script(redis: Redis, lua: string): ScriptRunner {
  const name = `cring_${randomBytes(4).toString('hex')}`;
  redis.defineCommand(name, { lua });
  return (scriptKeys, args) =>
    (redis as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[name]?.(
      scriptKeys.length,
      ...scriptKeys,
      ...args,
    ) as Promise<unknown>;
}

/** A change is recorded on the Redis primary, but not confirmed by enough replicas to survive a failover. */
export class NotReplicatedError extends Error {
  readonly confirmed: number;
  readonly wanted: number;
  constructor(confirmed: number, wanted: number, waitedMs: number) {
    super(`${confirmed} of ${wanted} Redis replica(s) confirmed the change within ${waitedMs} ms`);
    this.name = 'NotReplicatedError';
    this.confirmed = confirmed;
    this.wanted = wanted;
  }
}

export interface ManifestOptions {
  /** Replicas every acknowledged change must reach first (WAIT), so a Redis failover cannot forget it. */
  replicaWait?: { replicas: number; timeoutMs: number };
  /** Entries per step of a recursive delete's sweep (default SWEEP_CHUNK_ENTRIES). */
  sweepChunkEntries?: number;
  /**
   * Names this process in the locks it takes (see liveness.ts), so a dead holder's locks can be broken. One manifest
   * per owner: a lock naming it that this manifest does not hold is taken for stale and broken.
   */
  owner?: string;
}

/** The manifest of every user, in Redis. An index for routing and repair, not the truth: a scan can rebuild it. */
export function createManifest(redis: Redis, options: ManifestOptions = {}) {
  const sweepChunkEntries = options.sweepChunkEntries ?? SWEEP_CHUNK_ENTRIES;
  const owner = options.owner ?? '';
  // The locks this process holds now (user, path, fence). A lock in Redis that names this process and is not one of
  // them is stale: Redis restored from an older copy brought it back, or its release never reached Redis.
  const heldHere = new Set<string>();
  const heldKey = (charmId: string, path: string, fence: number | string | undefined) =>
    `${charmId}|${path}|${fence}`;
  const checkLockScript = script(redis, CHECK_LOCK);
  const openIntentScript = script(redis, OPEN_INTENT);
  const updateIntentScript = script(redis, UPDATE_INTENT);
  const clearIntentScript = script(redis, CLEAR_INTENT);
  const recordFailedIntentScript = script(redis, RECORD_FAILED_INTENT);
  const commitWriteScript = script(redis, COMMIT_WRITE);
  const commitDeleteScript = script(redis, COMMIT_DELETE);
  const sweepCoveredScript = script(redis, SWEEP_COVERED);
  const finishSweepScript = script(redis, FINISH_SWEEP);
  const updateHolderScript = script(redis, UPDATE_HOLDER);
  const acquireLockScript = script(redis, ACQUIRE_LOCK);
  const renewLockScript = script(redis, RENEW_LOCK);
  const releaseLockScript = script(redis, RELEASE_LOCK);
  const raiseSeqFloorScript = script(redis, RAISE_SEQ_FLOOR);
  const removeTombstoneScript = script(redis, REMOVE_TOMBSTONE);
  const readRouteScript = script(redis, READ_ROUTE);
  const readPlanScript = script(redis, READ_PLAN);
  const lockAndOpenIntentScript = script(redis, LOCK_AND_OPEN_INTENT);
  const lockAndReadScript = script(redis, LOCK_AND_READ);

  /**
   * Removes what the tombstone (path, version) covers, a chunk at a time: HSCAN a chunk of the user's entries, drop
   * the covered ones older than the tombstone in one short script, repeat; then forget the sweep. Until then reads
   * hide those entries (sweeps.ts), so a crash in between loses nothing and resurrects nothing.
   */
  async function sweep(charmId: string, path: string, version: number): Promise<void> {
    let cursor = '0';
    do {
      const [next, flat] = await redis.hscan(keys.entries(charmId), cursor, 'COUNT', sweepChunkEntries);
      const covered: string[] = [];
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const candidate = flat[i] as string;
        if (
          candidate !== path &&
          isWithin(candidate, path) &&
          decodeEntry(flat[i + 1] as string).version < version
        )
          covered.push(candidate);
      }
      // A small hash (listpack) answers HSCAN whole, whatever COUNT says: keep each script to one chunk.
      for (let start = 0; start < covered.length; start += sweepChunkEntries) {
        await sweepCoveredScript(
          [keys.entries(charmId)],
          [path, version, ...covered.slice(start, start + sweepChunkEntries)],
        );
      }
      cursor = next;
    } while (cursor !== '0');
    await finishSweepScript([keys.sweeps(charmId)], [path, version]);
  }

  /**
   * Runs `attempt` (a lock-taking script: {fence, ...} or {0, blocking path, blocking lock JSON}) until it takes the
   * lock, breaking the locks of holders known dead, for up to waitMs; returns the script's answer.
   */
  async function acquire(
    charmId: string,
    path: string,
    waitMs = 60_000,
    attempt: () => Promise<unknown>,
  ): Promise<[number, ...unknown[]]> {
    const started = Date.now();
    let delayMs = 5;
    for (;;) {
      const reply = (await attempt()) as [number, ...unknown[]];
      if (reply[0] !== 0) {
        // Recorded before anything else runs: another acquire of this process must not take it for stale.
        heldHere.add(heldKey(charmId, path, Number(reply[0])));
        return [Number(reply[0]), ...reply.slice(1)];
      }
      const [, blockingPath, blockingJson] = reply as [number, string?, string?];
      const blocking = JSON.parse(blockingJson ?? '{}') as { fence?: number; owner?: string };
      const staleOfMine =
        owner !== '' &&
        blocking.owner === owner &&
        !heldHere.has(heldKey(charmId, blockingPath ?? '', blocking.fence));
      if (blocking.owner && (staleOfMine || (await isOwnerGone(redis, blocking.owner)))) {
        await releaseLockScript([keys.locks(charmId)], [blockingPath ?? '', blocking.fence ?? '']);
        continue;
      }
      if (Date.now() - started > waitMs) throw new LockTimeoutError(path, Date.now() - started);
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, 200);
    }
  }

  /** The holder's handle on a lock just taken: renewed every third of its TTL until released or lost. */
  function heldLock(charmId: string, path: string, fence: number, ttlMs: number): PathLock {
    const lost = new AbortController();
    let renewedAt = Date.now();
    const loseLock = (detail: string) => {
      clearInterval(renewal);
      if (!lost.signal.aborted) lost.abort(new LockLostError(path, detail));
    };
    const renewal = setInterval(() => {
      renewLockScript([keys.locks(charmId)], [path, fence, ttlMs]).then(
        (renewed) => {
          if (Number(renewed) === 1) renewedAt = Date.now();
          else loseLock('it expired or a newer holder took it');
        },
        (err: Error) => {
          // Unconfirmed for a whole TTL: it may have expired and been taken; act as if it was.
          if (Date.now() - renewedAt >= ttlMs) loseLock(`could not renew it: ${err.message}`);
        },
      );
    }, ttlMs / 3);
    renewal.unref();
    // Redis is away: keep trying until it is back or the lock has expired on its own, so a lock left by a write
    // that failed with Redis does not block the path for a whole TTL after Redis returns.
    const retryRelease = () => {
      const retry = setInterval(() => {
        if (Date.now() - renewedAt >= ttlMs) return clearInterval(retry);
        releaseLockScript([keys.locks(charmId)], [path, fence]).then(
          () => clearInterval(retry),
          () => {},
        );
      }, 500);
      retry.unref();
    };
    let released = false;
    const holds: Promise<unknown>[] = [];
    const giveBack = async () => {
      heldHere.delete(heldKey(charmId, path, fence));
      clearInterval(renewal);
      try {
        await releaseLockScript([keys.locks(charmId)], [path, fence]);
      } catch (err) {
        retryRelease();
        throw err;
      }
    };
    const lock: PathLock = {
      path,
      fence,
      signal: lost.signal,
      async assertHeld() {
        lost.signal.throwIfAborted();
        if (Number(await checkLockScript([keys.locks(charmId)], [path, fence])) !== 1) {
          loseLock('it expired or a newer holder took it');
          lost.signal.throwIfAborted();
        }
      },
      async release() {
        if (released) return;
        released = true;
        if (holds.length === 0) return giveBack();
        // A failed give-back is retried in the background (retryRelease); nobody waits for this one.
        void Promise.allSettled(holds).then(() => giveBack().catch(() => {}));
      },
      holdUntil(settled) {
        if (!released) holds.push(settled);
      },
    };
    return lock;
  }

  /**
   * The end of an acknowledged change, in one round trip: the commands `first` sends (the change's jobs and their
   * pending markers: it returns their answers), then the replica wait (WAIT, when configured), then the release of
   * `lock`, all written at once on the connection, which keeps their order, without waiting in between (cheaper
   * than an ioredis pipeline, which copies every defined script) and in one socket write. Returns the answers of `first`'s commands in
   * order ([error, value] each), and why the change is not confirmed on the replicas (undefined: confirmed, or none
   * to wait for). A release that did not get through is retried as `release()` does. `waitForReplicas: false`
   * leaves the wait out (a job's bookkeeping, which no client waits for).
   */
  async function finishChange(
    lock: PathLock,
    first: () => Promise<unknown>[],
    { waitForReplicas = true }: { waitForReplicas?: boolean } = {},
  ): Promise<{ answers: [Error | null, unknown][]; notReplicated?: Error }> {
    const wanted = waitForReplicas ? (options.replicaWait?.replicas ?? 0) : 0;
    const timeoutMs = options.replicaWait?.timeoutMs ?? 1_000;
    const { sent, waited, released } = writtenTogether(redis, () => ({
      sent: first(),
      waited: wanted > 0 ? redis.wait(wanted, timeoutMs) : Promise.resolve(wanted),
      released: lock.release(),
    }));
    const [answers, replicas] = await Promise.all([
      Promise.allSettled(sent),
      waited.then(Number, (err: Error) => err),
      released.catch(() => {}), // retried in the background by release()
    ]);
    let notReplicated: Error | undefined;
    if (replicas instanceof Error) notReplicated = replicas;
    else if (replicas < wanted) notReplicated = new NotReplicatedError(replicas, wanted, timeoutMs);
    return {
      answers: answers.map((a) => (a.status === 'fulfilled' ? [null, a.value] : [a.reason as Error, null])),
      notReplicated,
    };
  }

  return {
    /**
     * Waits until the configured number of Redis replicas hold every change this connection made so far (WAIT);
     * call it after a commit and its jobs, before the client hears OK. Throws NotReplicatedError on a timeout.
     */
    async confirmReplicated(): Promise<void> {
      const wanted = options.replicaWait?.replicas ?? 0;
      if (wanted === 0) return;
      const timeoutMs = options.replicaWait?.timeoutMs ?? 1_000;
      const confirmed = Number(await redis.wait(wanted, timeoutMs));
      if (confirmed < wanted) throw new NotReplicatedError(confirmed, wanted, timeoutMs);
    },

    /**
     * Records an acknowledged write as the path's new version and resolves its write intent; returns the version.
     * Refused with LockLostError unless `lock` (on path) is still held.
     */
    async commitWrite(
      charmId: string,
      path: string,
      file: { sha256: string; size: number; mode: number; holders: string[]; atMs?: number },
      lock: PathLock,
    ): Promise<number> {
      const rest = JSON.stringify({
        k: 'f',
        at: file.atMs ?? Date.now(),
        sha: file.sha256,
        size: file.size,
        mode: file.mode,
        h: file.holders,
      }).slice(1);
      return Number(
        await fenced(
          path,
          commitWriteScript(
            [
              keys.version(charmId),
              keys.entries(charmId),
              keys.users(),
              keys.locks(charmId),
              keys.intents(charmId),
            ],
            [path, rest, charmId, lock.path, lock.fence],
          ),
        ),
      );
    },

    /**
     * Records an acknowledged (recursive) delete as a tombstone covering path, then removes the entries it covers in
     * chunks (see sweep); returns the version. Reads see the delete whole from the first step on. Refused with
     * LockLostError unless `lock` is still held.
     */
    async commitDelete(
      charmId: string,
      path: string,
      holders: string[],
      lock: PathLock,
      atMs = Date.now(),
    ): Promise<number> {
      const version = Number(
        await fenced(
          path,
          commitDeleteScript(
            [
              keys.version(charmId),
              keys.entries(charmId),
              keys.users(),
              keys.sweeps(charmId),
              keys.locks(charmId),
              keys.intents(charmId),
            ],
            [path, JSON.stringify(holders), atMs, charmId, lock.path, lock.fence],
          ),
        ),
      );
      await sweep(charmId, path, version);
      return version;
    },

    /** Finishes the sweeps a crashed delete left behind (the healer calls it per user); returns how many. */
    async finishSweeps(charmId: string): Promise<number> {
      const pending = await hashInChunks(redis, keys.sweeps(charmId));
      for (const [path, version] of pending) await sweep(charmId, path, Number(version));
      return pending.size;
    },

    /**
     * Records the write intent of `lock`'s holder before any owner is touched (merging an earlier failed write's
     * intent on the path). Returns the intent as stored: its `touched` is what a roll-back must cover.
     */
    async openIntent(charmId: string, lock: PathLock, touched: string[]): Promise<WriteIntent> {
      const json = await fenced(
        lock.path,
        openIntentScript(
          [keys.locks(charmId), keys.intents(charmId), keys.entries(charmId)],
          [lock.path, lock.fence, Date.now(), owner, JSON.stringify(touched)],
        ),
      );
      return decodeIntent(lock.path, String(json));
    },

    /** The holder adds a backend it is about to send bytes to. */
    async touchIntent(charmId: string, lock: PathLock, backend: string): Promise<void> {
      await fenced(
        lock.path,
        updateIntentScript(
          [keys.locks(charmId), keys.intents(charmId)],
          [lock.path, lock.fence, backend, '', ''],
        ),
      );
    },

    /** The holder sends its bytes to `add` instead of `drop`, before any byte went to either. */
    async retargetIntent(charmId: string, lock: PathLock, add: string, drop: string): Promise<void> {
      await fenced(
        lock.path,
        updateIntentScript(
          [keys.locks(charmId), keys.intents(charmId)],
          [lock.path, lock.fence, add, '', JSON.stringify([drop])],
        ),
      );
    },

    /**
     * The holder gave up on its write: reads stop trusting the touched backends until the roll-back is done.
     * `unreached` are backends the bytes provably never reached (connection refused): no roll-back needed there.
     * Returns the intent as it now stands.
     */
    async failIntent(
      charmId: string,
      lock: PathLock,
      unreached: string[] = [],
    ): Promise<WriteIntent | undefined> {
      await fenced(
        lock.path,
        updateIntentScript(
          [keys.locks(charmId), keys.intents(charmId)],
          [lock.path, lock.fence, '', 'failed', unreached.length ? JSON.stringify(unreached) : ''],
        ),
      );
      const json = await redis.hget(keys.intents(charmId), lock.path);
      return json ? decodeIntent(lock.path, json) : undefined;
    },

    /**
     * Puts a refused write back on record after its intent was lost with Redis's tail (its lock gone too): state
     * `failed`, so the healer rolls `touched` back (row I2) and never adopts those bytes (row L1 skips open
     * intents). Recorded only if no intent is open at the path and its entry is no newer than `opened.previous`; returns
     * the intent as stored, or undefined when nothing was recorded (a newer change governs, or nothing was touched).
     */
    async recordFailedIntent(
      charmId: string,
      opened: WriteIntent,
      touched: readonly string[],
    ): Promise<WriteIntent | undefined> {
      if (touched.length === 0) return undefined;
      const json = await recordFailedIntentScript(
        [keys.fence(charmId), keys.intents(charmId), keys.entries(charmId)],
        [
          opened.path,
          opened.previous ? String(opened.previous.version) : '',
          opened.atMs,
          opened.owner,
          JSON.stringify(touched),
          opened.previous ? encodeEntry(opened.previous) : '',
        ],
      );
      return typeof json === 'string' ? decodeIntent(opened.path, json) : undefined;
    },

    /** Removes a rolled-back intent (still the one of `intentFence`) under the caller's lock on its path. */
    async clearIntent(charmId: string, lock: PathLock, intentFence: number): Promise<boolean> {
      const removed = await fenced(
        lock.path,
        clearIntentScript([keys.locks(charmId), keys.intents(charmId)], [lock.path, lock.fence, intentFence]),
      );
      return Number(removed) === 1;
    },

    async intent(charmId: string, path: string): Promise<WriteIntent | undefined> {
      const json = await redis.hget(keys.intents(charmId), path);
      return json ? decodeIntent(path, json) : undefined;
    },

    /** Every open write intent of the user. */
    async intents(charmId: string): Promise<WriteIntent[]> {
      const all = await hashInChunks(redis, keys.intents(charmId));
      return [...all].map(([path, json]) => decodeIntent(path, json));
    },

    /**
     * True while the writer of `intent` still holds its lock (the write may still succeed); false once it gave
     * up or its lock is gone (it died or froze): the intent then waits for a roll-back.
     */
    async intentInFlight(charmId: string, intent: WriteIntent): Promise<boolean> {
      if (intent.state === 'failed') return false;
      return Number(await checkLockScript([keys.locks(charmId)], [intent.path, intent.fence])) === 1;
    },

    /** The entry that decides what `path` is now: its own file entry, or a newer tombstone at it or above it. */
    async governing(charmId: string, path: string): Promise<(ManifestEntry & { path: string }) | undefined> {
      const candidates = ancestorsOf(path);
      const [raw, sweptAt] = await Promise.all([
        redis.hmget(keys.entries(charmId), ...candidates),
        redis.hmget(keys.sweeps(charmId), ...candidates),
      ]);
      return decideGoverning(path, candidates, raw, sweptAt);
    },

    /** What a read needs, in one round trip (one script): the path's governing entry and the pending backends. */
    async readRoute(
      charmId: string,
      path: string,
    ): Promise<{ governing: (ManifestEntry & { path: string }) | undefined; pending: Set<string> }> {
      const candidates = ancestorsOf(path);
      const [raw, sweptAt, pendingFields] = (await readRouteScript(
        [keys.entries(charmId), keys.sweeps(charmId), keys.pending(charmId)],
        candidates,
      )) as [(string | null)[], (string | null)[], string[]];
      return {
        governing: decideGoverning(path, candidates, raw, sweptAt),
        pending: pendingBackendsOf(pendingFields),
      };
    },

    /**
     * Everything a read asks the manifest, in one round trip (one read-only script): readRoute's answer, the path's
     * write intent, and whether that intent's writer still holds its lock (intentInFlight).
     */
    async readPlan(charmId: string, path: string): Promise<ReadPlan> {
      const candidates = ancestorsOf(path);
      const [raw, sweptAt, pendingFields, intentJson, inFlight] = (await readPlanScript(
        [
          keys.entries(charmId),
          keys.sweeps(charmId),
          keys.pending(charmId),
          keys.intents(charmId),
          keys.locks(charmId),
        ],
        [path, ...candidates],
      )) as [(string | null)[], (string | null)[], string[], string | null, number];
      const intent = intentJson ? decodeIntent(path, intentJson) : undefined;
      return {
        governing: decideGoverning(path, candidates, raw, sweptAt),
        pending: pendingBackendsOf(pendingFields),
        intent,
        intentInFlight: intent !== undefined && Number(inFlight) === 1,
      };
    },

    async entry(charmId: string, path: string): Promise<ManifestEntry | undefined> {
      const ancestors = ancestorsOf(path);
      const [json, sweptAt] = await results(
        redis
          .pipeline()
          .hget(keys.entries(charmId), path)
          .hmget(keys.sweeps(charmId), ...ancestors),
      );
      if (!json) return undefined;
      const entry = decodeEntry(json as string);
      return hiddenBySweep(path, entry, sweepsAt(ancestors, sweptAt as (string | null)[]))
        ? undefined
        : entry;
    },

    /**
     * Every entry at or below prefix (files and tombstones), read in chunks (HSCAN) so a user with 100,000 files
     * never blocks Redis for long; the sweeps are read after the entries, so a delete that began meanwhile hides
     * what it covers.
     */
    async entriesWithin(charmId: string, prefix = '/'): Promise<Map<string, ManifestEntry>> {
      const below = cleanFsPath(prefix);
      const all = await hashInChunks(redis, keys.entries(charmId), { prefix: below === '/' ? '' : below });
      const sweeps = await hashInChunks(redis, keys.sweeps(charmId));
      const pendingSweeps: Sweeps = new Map([...sweeps].map(([p, v]) => [p, Number(v)]));
      const out = new Map<string, ManifestEntry>();
      for (const [path, json] of all) {
        if (!isWithin(path, prefix)) continue;
        const entry = decodeEntry(json);
        if (!hiddenBySweep(path, entry, pendingSweeps)) out.set(path, entry);
      }
      return out;
    },

    /** The user's latest version (0 before the first change): entries above it were committed after this call. */
    async latestVersion(charmId: string): Promise<number> {
      return Number((await redis.get(keys.version(charmId))) ?? 0);
    },

    /**
     * Forgets the tombstone at path, only while it is still that version (the healer collects tombstones past
     * their retention once no copy they cover is left anywhere). Returns true if it was removed.
     */
    async removeTombstone(charmId: string, path: string, version: number): Promise<boolean> {
      return Number(await removeTombstoneScript([keys.entries(charmId)], [path, version])) === 1;
    },

    /**
     * Marks backend as holding path at version, only if that version still governs the entry; with `lock` (the
     * caller wrote the bytes under it), only while it is still held, else LockLostError.
     */
    async addHolder(
      charmId: string,
      path: string,
      version: number,
      backend: string,
      lock?: PathLock,
    ): Promise<boolean> {
      return (
        Number(
          await fenced(
            path,
            updateHolderScript(
              [keys.entries(charmId), keys.locks(charmId)],
              [path, version, backend, '1', lock?.path ?? '', lock?.fence ?? ''],
            ),
          ),
        ) === 1
      );
    },

    async removeHolder(charmId: string, path: string, version: number, backend: string): Promise<boolean> {
      return (
        Number(
          await updateHolderScript(
            [keys.entries(charmId), keys.locks(charmId)],
            [path, version, backend, '0', '', ''],
          ),
        ) === 1
      );
    },

    async addPending(charmId: string, backend: string, jobId: string): Promise<void> {
      await redis.hset(keys.pending(charmId), `${backend}|${jobId}`, Date.now());
    },

    async removePending(charmId: string, backend: string, jobId: string): Promise<void> {
      await redis.hdel(keys.pending(charmId), `${backend}|${jobId}`);
    },

    /** Backends with changes for this user not applied yet (listings avoid them). */
    async pendingBackends(charmId: string): Promise<Set<string>> {
      return pendingBackendsOf(await redis.hkeys(keys.pending(charmId)));
    },

    async pendingJobs(charmId: string): Promise<{ backend: string; jobId: string; sinceMs: number }[]> {
      const all = await hashInChunks(redis, keys.pending(charmId));
      return [...all].map(([field, since]) => {
        const bar = field.indexOf('|');
        return { backend: field.slice(0, bar), jobId: field.slice(bar + 1), sinceMs: Number(since) };
      });
    },

    async users(): Promise<string[]> {
      return await setInChunks(redis, keys.users());
    },

    /**
     * Waits for and takes the lock on path: no other mutation of the same path, an ancestor or a descendant runs
     * until release. Renewed while held, so a slow 1 GiB upload keeps it; a crashed holder's lock expires, or is
     * broken at once when its owner is known dead (restarted or gone, see liveness.ts). Losing the lock aborts
     * `signal`; the fencing token makes every later write of the old holder fail.
     */
    async lockPath(
      charmId: string,
      path: string,
      options: { ttlMs?: number; waitMs?: number } = {},
    ): Promise<PathLock> {
      const ttlMs = options.ttlMs ?? 30_000;
      const [fence] = await acquire(charmId, path, options.waitMs, () =>
        acquireLockScript([keys.locks(charmId), keys.fence(charmId)], [path, ttlMs, owner]),
      );
      return heldLock(charmId, path, fence, ttlMs);
    },

    /**
     * lockPath and openIntent in one round trip (one script): a write's lock, and its intent recorded under it
     * before any owner is touched, naming the backends the write will send bytes to first, as `touched` gives them
     * right before each attempt (an error it throws ends the wait, with nothing taken).
     */
    async lockPathForWrite(
      charmId: string,
      path: string,
      touched: () => string[],
      options: { ttlMs?: number; waitMs?: number } = {},
    ): Promise<{ lock: PathLock; intent: WriteIntent }> {
      const ttlMs = options.ttlMs ?? 30_000;
      const [fence, json] = await acquire(charmId, path, options.waitMs, () =>
        lockAndOpenIntentScript(
          [keys.locks(charmId), keys.fence(charmId), keys.intents(charmId), keys.entries(charmId)],
          [path, ttlMs, owner, Date.now(), JSON.stringify(touched())],
        ),
      );
      return { lock: heldLock(charmId, path, fence, ttlMs), intent: decodeIntent(path, String(json)) };
    },

    /**
     * lockPath and governing in one round trip: the lock on `path`, and the governing entry of `options.read`
     * (default: that path) as read right after the lock was taken (a job's first step: whether its version still
     * governs).
     */
    async lockPathReading(
      charmId: string,
      path: string,
      options: { ttlMs?: number; waitMs?: number; read?: string } = {},
    ): Promise<{ lock: PathLock; governing: (ManifestEntry & { path: string }) | undefined }> {
      const ttlMs = options.ttlMs ?? 30_000;
      const read = options.read ?? path;
      const candidates = ancestorsOf(read);
      const [fence, raw, sweptAt] = await acquire(charmId, path, options.waitMs, () =>
        lockAndReadScript(
          [keys.locks(charmId), keys.fence(charmId), keys.entries(charmId), keys.sweeps(charmId)],
          [path, ttlMs, owner, ...candidates],
        ),
      );
      return {
        lock: heldLock(charmId, path, fence, ttlMs),
        governing: decideGoverning(read, candidates, raw as (string | null)[], sweptAt as (string | null)[]),
      };
    },

    /**
     * addHolder under `lock`, and the lock's release, in one round trip. Returns whether the holder was added (the
     * version still governs); LockLostError unless the lock was still held.
     */
    async addHolderAndRelease(
      charmId: string,
      path: string,
      version: number,
      backend: string,
      lock: PathLock,
    ): Promise<boolean> {
      const { answers } = await finishChange(
        lock,
        () => [
          updateHolderScript(
            [keys.entries(charmId), keys.locks(charmId)],
            [path, version, backend, '1', lock.path, lock.fence],
          ),
        ],
        { waitForReplicas: false },
      );
      const [err, added] = answers[0] ?? [new Error('no answer'), 0];
      return Number(await fenced(path, err ? Promise.reject(err) : Promise.resolve(added))) === 1;
    },

    finishChange,

    /** The created_at first stamped for an encrypt key of this user, so a retried fan-out reuses it. */
    async stampEncryptKey(charmId: string, keyId: string, createdAt: string): Promise<string> {
      await redis.hsetnx(keys.encryptKeyStamps(charmId), keyId, createdAt);
      return (await redis.hget(keys.encryptKeyStamps(charmId), keyId)) ?? createdAt;
    },

    /** Raises the highest seq value ever handed out for (user, name); returns the floor after the update. */
    async raiseSeqFloor(charmId: string, name: string, value: number): Promise<number> {
      return Number(await raiseSeqFloorScript([keys.seqFloors(charmId)], [name, value]));
    },

    async seqFloor(charmId: string, name: string): Promise<number> {
      const value = await redis.hget(keys.seqFloors(charmId), name);
      return value === null ? -1 : Number(value);
    },
  };
}

export type Manifest = ReturnType<typeof createManifest>;
export type { FileEntry, ManifestEntry, Tombstone };

/**
 * Runs `send`, which writes several commands on `redis`, with the connection's socket corked: the commands leave
 * in one write (one syscall, one packet for Redis to read) instead of one each, in the same order.
 */
export function writtenTogether<T>(redis: Redis, send: () => T): T {
  const socket = (redis as unknown as { stream?: Writable }).stream;
  socket?.cork();
  try {
    return send();
  } finally {
    socket?.uncork();
  }
}
