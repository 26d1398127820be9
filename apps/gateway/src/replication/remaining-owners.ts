import type { Backend } from '@cring/charm';
import type { JobQueues } from '@cring/jobs';
import type { Manifest, PathLock } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';

/** recorded: the owner is a holder now; failed: the copy failed (its job runs now); the others leave it to the job. */
export type RemainingOwnerOutcome = 'recorded' | 'failed' | 'not-recorded' | 'skipped';

export interface RemainingOwnerCopy {
  charmId: string;
  path: string;
  version: number;
  /** The write's lock, held (`holdUntil`) until every copy is recorded or left to its job. */
  lock: PathLock;
  /** Each owner the quorum left out that gets the bytes from the gateway, with its fallback job's id. */
  targets: readonly { backend: Backend; jobId: string }[];
  /** Sends the version's bytes to one owner (one whole-body POST); rejects unless it answered 200. */
  send(backend: Backend): Promise<unknown>;
  /** Settles once the change's jobs (these fallbacks among them) were sent to Redis; never rejects. */
  enqueued: Promise<unknown>;
  log: Pick<Logger, 'warn' | 'error'>;
}

export interface RemainingOwnerCopies {
  /**
   * The rows of apps/gateway/README.md "The remaining owners of a small write": sends the bytes to every target at
   * once, then, once the jobs were sent, records each owner that took them as a holder (fenced by the lock), then
   * cancels its fallback job and clears its pending marker; a failed copy has its job run at once. Never rejects.
   */
  copy(write: RemainingOwnerCopy): Promise<void>;
  /** Resolves once the copies in flight are done (a stopping gateway waits for them). */
  drain(): Promise<void>;
}

export function createRemainingOwnerCopies(deps: {
  manifest: Pick<Manifest, 'addHolder' | 'removePending'>;
  queues: Pick<JobQueues, 'cancel' | 'promote'>;
  onOutcome?: (outcome: RemainingOwnerOutcome) => void;
}): RemainingOwnerCopies {
  const inFlight = new Set<Promise<void>>();

  async function copyOne(write: RemainingOwnerCopy, backend: Backend, jobId: string) {
    const where = { backend: backend.name, version: write.version };
    // A lost lock means a newer writer may be on the path: no byte goes out, the job decides under its own lock.
    if (write.lock.signal.aborted) return 'skipped';
    const sent = await write.send(backend).then(
      () => undefined,
      (err: Error) => err,
    );
    await write.enqueued;
    if (sent) {
      write.log.warn(
        { ...where, err: sent.message },
        'could not copy a write to a remaining owner; its replicate job runs now',
      );
      await deps.queues.promote(backend.name, jobId).catch((err: Error) => {
        write.log.warn(
          { ...where, err: err.message },
          'could not run the replicate job now; it runs once its delay is over',
        );
      });
      return 'failed';
    }
    try {
      const added = await deps.manifest.addHolder(
        write.charmId,
        write.path,
        write.version,
        backend.name,
        write.lock,
      );
      if (!added) return 'not-recorded'; // the version no longer governs (cannot happen under a held lock)
    } catch (err) {
      write.log.warn(
        { ...where, err: (err as Error).message },
        'a copy to a remaining owner was not recorded; its job repeats it',
      );
      return 'not-recorded';
    }
    // The fallback is moot now. One already running (its delay passed meanwhile) clears its own marker.
    const cancelled = await deps.queues.cancel(backend.name, jobId).catch(() => false);
    if (cancelled) await deps.manifest.removePending(write.charmId, backend.name, jobId).catch(() => {});
    return 'recorded';
  }

  return {
    copy(write) {
      const done = Promise.all(
        write.targets.map(async ({ backend, jobId }) => {
          const outcome = await copyOne(write, backend, jobId).catch((err: Error) => {
            write.log.error(
              { err, backend: backend.name },
              'a copy to a remaining owner went wrong; its job covers it',
            );
            return 'not-recorded' as const;
          });
          deps.onOutcome?.(outcome);
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
