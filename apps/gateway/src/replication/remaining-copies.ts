import { Readable } from 'node:stream';
import type { BackupStore } from '@cring/backup-store';
import { type JobQueues, S3_TARGET, s3LockName } from '@cring/jobs';
import type { Manifest, PathLock } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';

/** recorded: the copy is on record (its job cancelled); failed: its job runs now; the others leave it to the job. */
export type RemainingCopyOutcome = 'recorded' | 'failed' | 'not-recorded' | 'skipped';

/** One copy an acknowledged write still needs: an owner the quorum left out, or the S3 backup. */
export interface RemainingCopyTarget {
  /** A backend's name, or S3_TARGET: the target of its fallback job and pending marker. */
  target: string;
  jobId: string;
  /** Sends the version's bytes there; rejects unless they were taken. */
  send(): Promise<unknown>;
  /** Puts the copy on record (an owner as a holder, fenced by the lock); false or a rejection: left to its job. */
  record(): Promise<boolean>;
}

export interface RemainingCopies {
  /**
   * The rows of apps/gateway/README.md "The remaining copies of a small write": sends to every target at once,
   * then, once the change's jobs were sent, records each copy that was taken, then clears its pending marker and
   * cancels its fallback job; a failed copy has its job run at once. Never rejects.
   */
  copy(write: {
    charmId: string;
    /** The write's lock, held (`holdUntil`) until every copy is recorded or left to its job. */
    lock: PathLock;
    targets: readonly RemainingCopyTarget[];
    /** Settles once the change's jobs (these fallbacks among them) were sent to Redis; never rejects. */
    enqueued: Promise<unknown>;
    log: Pick<Logger, 'warn' | 'error'>;
  }): Promise<void>;
  /** Resolves once the copies in flight are done (a stopping gateway waits for them). */
  drain(): Promise<void>;
}

export function createRemainingCopies(deps: {
  manifest: { removePending(charmId: string, target: string, jobId: string): Promise<void> };
  queues: Pick<JobQueues, 'cancel' | 'promote'>;
  onOutcome?: (target: string, outcome: RemainingCopyOutcome) => void;
}): RemainingCopies {
  const inFlight = new Set<Promise<void>>();

  async function copyOne(
    write: Parameters<RemainingCopies['copy']>[0],
    { target, jobId, send, record }: RemainingCopyTarget,
  ): Promise<RemainingCopyOutcome> {
    const where = { target, jobId };
    // A lock known lost means a newer writer may be on the path: nothing goes out, the job decides under its own
    // lock. (Each send also has Redis confirm the lock right before its bytes leave.)
    if (write.lock.signal.aborted) return 'skipped';
    const failed = await send().then(
      () => undefined,
      (err: Error) => err,
    );
    await write.enqueued;
    if (failed) {
      write.log.warn(
        { ...where, err: failed.message },
        'a remaining copy of a write failed; its job runs now',
      );
      await deps.queues.promote(target, jobId).catch((err: Error) => {
        write.log.warn(
          { ...where, err: err.message },
          'could not run the job now; it runs once its delay is over',
        );
      });
      return 'failed';
    }
    try {
      if (!(await record())) return 'not-recorded';
    } catch (err) {
      write.log.warn(
        { ...where, err: (err as Error).message },
        'a remaining copy of a write was not recorded',
      );
      return 'not-recorded';
    }
    // The fallback is moot now: its marker goes first, then the job. Killed in between, this gateway leaves a job
    // that copies once more, never a marker no job will clear. One already running (its delay passed) just ends.
    await deps.manifest.removePending(write.charmId, target, jobId).catch(() => {});
    await deps.queues.cancel(target, jobId).catch(() => false);
    return 'recorded';
  }

  return {
    copy(write) {
      const done = Promise.all(
        write.targets.map(async (target) => {
          const outcome = await copyOne(write, target).catch((err: Error) => {
            write.log.error({ err, target: target.target }, 'a remaining copy went wrong; its job covers it');
            return 'not-recorded' as const;
          });
          deps.onOutcome?.(target.target, outcome);
        }),
      ).then(() => {});
      inFlight.add(done);
      void done.finally(() => inFlight.delete(done));
      return done;
    },
    async drain() {
      await Promise.all([...inFlight]);
    },
  };
}

/** The acknowledged version a write's remaining copies carry, and the write's lock. */
interface Acknowledged {
  charmId: string;
  path: string;
  version: number;
  lock: PathLock;
}

/**
 * A copy to an owner the quorum left out: `post` sends the request body once Redis confirmed the lock (a gateway
 * paused past its TTL must not land these bytes over a newer writer's); recorded as a holder, fenced.
 */
export function ownerCopy(
  manifest: Pick<Manifest, 'addHolder'>,
  write: Acknowledged,
  backend: string,
  jobId: string,
  post: () => Promise<unknown>,
): RemainingCopyTarget {
  return {
    target: backend,
    jobId,
    async send() {
      await write.lock.assertHeld();
      return post();
    },
    record: () => manifest.addHolder(write.charmId, write.path, write.version, backend, write.lock),
  };
}

/**
 * The S3 backup of the file's bytes, under the path's S3 lock as the replicator's backups and S3 deletes take it,
 * asked for once: while an older version's backup (a large file's, maybe minutes) or an S3 delete holds it, this
 * copy fails and its job runs, queued behind them, instead of the write's path lock waiting meanwhile (a slow
 * upload to S3 never holds up the user's next write). S3 holds no holder list.
 */
export function backupCopyOf(
  manifest: Pick<Manifest, 'lockPath'>,
  store: Pick<BackupStore, 'put'>,
  write: Acknowledged,
  jobId: string,
  file: { bytes: Buffer; size: number; sha256: string; mode: number },
): RemainingCopyTarget {
  return {
    target: S3_TARGET,
    jobId,
    async send() {
      const s3Lock = await manifest.lockPath(write.charmId, s3LockName(write.path), { waitMs: 0 });
      try {
        await write.lock.assertHeld(); // this process may have paused meanwhile
        await store.put(write.charmId, write.path, {
          body: Readable.from([file.bytes]),
          size: file.size,
          sha256: file.sha256,
          mode: file.mode,
          version: write.version,
        });
      } finally {
        await s3Lock.release();
      }
    },
    record: async () => true,
  };
}
