/**
 * A refused write whose intent Redis lost must go back on record (`recordFailedIntent`), or the healer's row L1
 * would adopt its bytes once a quorum holds them. When Redis is unreachable at the refusal (restarting), the
 * record is retried with a bounded backoff until it is stored, the script declines (a newer change governs, or an
 * intent is open at the path: either keeps the bytes out of adoption), or `horizonMs` passes (logged: given up).
 * The healer adopts only copies older than its lost-write grace, which outlasts that horizon.
 * While a record is awaited, reads keep off the backends it touched (`touched`), Redis reachable or not, and the
 * write's path lock stays held (`holdUntil`): the healer must not resolve the intent (row I2) and then see this
 * retry put it back. Each awaited record is written down on this host first (refusal-journal.ts): a gateway stopped
 * or killed before Redis answered leaves it to the next one here, which resumes it at start (`resume`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Manifest, PathLock, WriteIntent } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';
import type { RefusalJournal } from './refusal-journal.ts';

/** The request's logger: a refusal's later outcome is logged under its request id. */
type RefusalLog = Pick<Logger, 'warn' | 'error'>;

export interface RefusalRecordSettings {
  /** How long a refusal's record is retried before it is given up. */
  horizonMs: number;
  /** How much of that the client's answer waits for (so a quick Redis restart is covered before the 503). */
  answerWaitMs: number;
  /** First retry delay; each next one doubles, up to `maxBackoffMs`. */
  firstBackoffMs?: number;
  maxBackoffMs?: number;
}

export interface RefusalRecords {
  /**
   * Puts the refusal back on record. Resolves, at the latest after `answerWaitMs`, with the intent as stored if it
   * was recorded by then; undefined when it was not needed or is still being retried (see `touched`). A retry
   * holds the write's `lock` until it ends.
   */
  record(
    charmId: string,
    opened: WriteIntent,
    touched: readonly string[],
    lock: Pick<PathLock, 'holdUntil'>,
    log: RefusalLog,
  ): Promise<WriteIntent | undefined>;
  /** Backends holding bytes of refusals at path whose record is still awaited. */
  touched(charmId: string, path: string): ReadonlySet<string>;
  /** Refusals whose record is still awaited. */
  awaiting(): number;
  /** Resumes the records gateways that are gone left in the journal (at start); resolves with how many. */
  resume(log: RefusalLog): Promise<number>;
  /** Stops retrying (shutdown); each refusal still awaited stays in the journal for the next gateway here. */
  close(): void;
}

interface Awaited {
  charmId: string;
  path: string;
  touched: readonly string[];
}

export function createRefusalRecords(deps: {
  manifest: Pick<Manifest, 'recordFailedIntent'>;
  settings: RefusalRecordSettings;
  /** Where awaited records are written down (none: a stopped gateway forgets them). */
  journal?: RefusalJournal;
  /** Told the number of refusals awaiting their record whenever it changes (a gauge). */
  onAwaitingChange?: (count: number) => void;
}): RefusalRecords {
  const { manifest, settings } = deps;
  const firstBackoffMs = settings.firstBackoffMs ?? 100;
  const maxBackoffMs = settings.maxBackoffMs ?? 2_000;
  const pending = new Set<Awaited>();
  const stop = new AbortController();
  const changed = () => deps.onAwaitingChange?.(pending.size);

  /**
   * After a first attempt failed: retries until recorded, declined, the horizon passed, or `close`; the journal's
   * note goes once the record is settled (kept on `close`, for the next gateway here).
   */
  async function retry(
    refusal: Awaited,
    opened: WriteIntent,
    log: RefusalLog,
    firstError: unknown,
    note?: string,
  ) {
    const giveUpAtMs = Date.now() + settings.horizonMs;
    let backoffMs = firstBackoffMs;
    let attempts = 1;
    let lastError = firstError;
    let settled = true;
    try {
      while (!stop.signal.aborted && Date.now() < giveUpAtMs) {
        const waitMs = Math.min(backoffMs, giveUpAtMs - Date.now());
        await sleep(waitMs, undefined, { signal: stop.signal, ref: false }).catch(() => {});
        if (stop.signal.aborted) break;
        backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
        attempts++;
        try {
          const intent = await manifest.recordFailedIntent(refusal.charmId, opened, refusal.touched);
          log.warn(
            { charmId: refusal.charmId, attempts, recorded: intent !== undefined },
            intent
              ? 'failed write intent recorded again once Redis answered'
              : 'failed write intent not needed any more once Redis answered (a newer change or an open intent governs)',
          );
          return intent;
        } catch (err) {
          lastError = err;
        }
      }
      if (stop.signal.aborted && note !== undefined) {
        settled = false;
        log.warn(
          { err: lastError, charmId: refusal.charmId, touched: refusal.touched, attempts },
          'stopping with a failed write intent not recorded yet: the next gateway on this host resumes it from its journal',
        );
        return undefined;
      }
      log.error(
        { err: lastError, charmId: refusal.charmId, touched: refusal.touched, attempts },
        'gave up recording a failed write intent again: its bytes stay unrecorded on the touched backends (the healer adopts none younger than its lost-write grace)',
      );
      return undefined;
    } finally {
      pending.delete(refusal);
      changed();
      if (settled && note !== undefined)
        await deps.journal
          ?.remove(note)
          .catch((err) => log.warn({ err }, 'could not remove a refusal journal note'));
    }
  }

  /** Writes the refusal down before anything waits on Redis; a journal that fails is logged, not fatal. */
  async function writeDown(
    charmId: string,
    opened: WriteIntent,
    touched: readonly string[],
    log: RefusalLog,
  ) {
    try {
      return await deps.journal?.save({ charmId, opened, touched: [...touched] });
    } catch (err) {
      log.error(
        { err, charmId },
        'could not write a refusal down in the journal: a gateway killed before Redis answers forgets it',
      );
      return undefined;
    }
  }

  return {
    async record(charmId, opened, touched, lock, log) {
      if (touched.length === 0) return undefined;
      try {
        return await manifest.recordFailedIntent(charmId, opened, touched);
      } catch (err) {
        log.warn(
          { err, charmId },
          'could not record the failed write intent again: retrying until Redis answers',
        );
        const refusal: Awaited = { charmId, path: opened.path, touched: [...touched] };
        pending.add(refusal);
        changed();
        const note = await writeDown(charmId, opened, refusal.touched, log);
        const recorded = retry(refusal, opened, log, err, note);
        lock.holdUntil(recorded);
        const answerWait = new AbortController();
        const waited = sleep(settings.answerWaitMs, undefined, {
          signal: answerWait.signal,
          ref: false,
        }).catch(() => undefined);
        return await Promise.race([recorded, waited]).finally(() => answerWait.abort());
      }
    },
    touched(charmId, path) {
      const backends = new Set<string>();
      for (const refusal of pending)
        if (refusal.charmId === charmId && refusal.path === path)
          for (const backend of refusal.touched) backends.add(backend);
      return backends;
    },
    awaiting: () => pending.size,
    async resume(log) {
      if (!deps.journal) return 0;
      const found = await deps.journal.leftovers().catch((err: Error) => {
        log.error(
          { err },
          'could not read the refusal journal: refusals a killed gateway left are not resumed',
        );
        return { refusals: [], unreadable: [] };
      });
      const { refusals, unreadable } = found;
      if (unreadable.length > 0)
        log.warn(
          { unreadable },
          'removed refusal journal notes a gateway did not finish writing (its client had no answer)',
        );
      for (const { handle, refusal: left } of refusals) {
        const refusal: Awaited = { charmId: left.charmId, path: left.opened.path, touched: left.touched };
        pending.add(refusal);
        log.warn(
          { charmId: left.charmId, touched: left.touched, savedAtMs: left.savedAtMs },
          'resuming the record of a failed write intent a previous gateway left in its journal',
        );
        void retry(refusal, left.opened, log, undefined, handle);
      }
      changed();
      return refusals.length;
    },
    close() {
      stop.abort();
    },
  };
}
