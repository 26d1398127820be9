import { type Backend, fsPathFromUrl } from '@cring/charm';
import { failedAdds, type JobAdd, jobIdOf } from '@cring/jobs';
import {
  LockLostError,
  NotReplicatedError as ManifestNotReplicatedError,
  type PathLock,
  type WriteIntent,
} from '@cring/manifest';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  BadRequestError,
  GatewayError,
  InsufficientStorageError,
  LockLostChangeError,
  NOTHING_CHANGED,
  NoQuorumError,
  NotReplicatedError,
  ReadOnlyError,
  StateUnavailableError,
} from '../../errors.ts';
import { rollBackFailedWrite, sharedRefusal } from '../../replication/failed-writes.ts';
import { sparingAHolder } from '../../replication/placement.ts';
import { runQuorum } from '../../replication/quorum.ts';
import { backupCopyOf, ownerCopy } from '../../replication/remaining-copies.ts';
import { copyToStandIn } from '../../replication/stand-in-copy.ts';
import { startStreamedUploads } from '../../replication/streamed-uploads.ts';
import { fileBytesOf } from '../../spool/multipart-scanner.ts';
import { type SpooledUpload, spoolUpload } from '../../spool/upload-spool.ts';
import {
  BackendRefusedError,
  callBackend,
  callBackendExpectOk,
  postWholeToBackend,
  userAuthorization,
} from '../backend-calls.ts';
import { lockPath, lockPathForWrite } from '../path-lock.ts';
import type { GatewayServices } from '../services.ts';

const MODE_DIR_BIT = 2 ** 31;

function fsTarget(request: FastifyRequest) {
  const target = fsPathFromUrl(request.raw.url ?? '');
  if (!target) throw new BadRequestError('not a /v1/fs/ path');
  return target;
}

/**
 * POST and DELETE /v1/fs/*: a change is committed synchronously on W owners (sloppy quorum), then recorded as the
 * path's next version in the manifest, then the remaining owners and S3 get jobs, then the client gets 200.
 * A write first records its intent; one that is not acknowledged is rolled back on the backends it touched
 * before the answer, which says what happened (apps/gateway/README.md has the table, one row per situation).
 */
export function registerFsWriteRoutes(app: FastifyInstance, services: GatewayServices): void {
  const { manifest, placement } = services;
  const quorum = services.config.writeQuorum;

  app.post('/v1/fs/*', async (request, reply) => {
    const { charmId } = request;
    const { path, query } = fsTarget(request);
    if (path === '/') throw new BadRequestError('cannot write to the root directory: name a file');
    const modeText = query.get('mode') ?? '';
    const mode = Number(modeText);
    if (!/^\d{1,10}$/.test(modeText) || mode > 0xffffffff) {
      throw new BadRequestError(`mode must be a decimal file mode (uint32), got "${modeText}"`);
    }
    const contentType = request.headers['content-type'];
    const contentLength = request.headers['content-length'];
    // Checked before the lock and again under it (a backend may fill meanwhile), before any byte is read.
    const withRoom = () => {
      const candidates = placement.writeCandidates(charmId);
      if (candidates.length >= quorum) return candidates;
      request.raw.resume(); // drain the body so the client reads the answer
      throw new InsufficientStorageError(quorum, placement.underReserve());
    };
    withRoom();
    // A directory (ModeDir bit) has no content to version or roll back; the server only creates it.
    const isDirectory = mode >= MODE_DIR_BIT;
    // The first W owners with room, as they are when the lock is taken (a wait for it may be long).
    let first: Backend[] = [];
    const planFirst = () => {
      first = withRoom().slice(0, quorum);
      return first.map((b) => b.name);
    };
    // Before any owner is touched: the lock and the write intent naming those owners, in one round trip (a dead
    // Redis refuses the write here, with nothing changed).
    const { lock, intent } = isDirectory
      ? { lock: await lockPath(services, charmId, path), intent: undefined }
      : await lockPathForWrite(services, charmId, path, planFirst);
    let upload: SpooledUpload | undefined;
    // Copies to the remaining owners and S3, sent after the answer from the body in memory (kept until they end).
    let copies: Promise<void> | undefined;
    try {
      if (isDirectory) planFirst();
      const planned = [
        ...first,
        ...placement.writeCandidates(charmId).filter((b) => !first.some((f) => f.name === b.name)),
      ];
      const candidates = intent ? await spareAHolder(services, charmId, lock, intent, planned) : planned;
      first = candidates.slice(0, quorum);
      const pathAndQuery = `/v1/fs${path}?mode=${modeText}`;
      const headersFor = (type: string, length: string) => [
        'Content-Type',
        type,
        'Content-Length',
        length,
        ...userAuthorization(request),
      ];
      // With a known length, the first W owners receive the body while it arrives; without, after spooling.
      const streaming =
        contentType && contentLength && Number(contentLength) <= services.config.spool.maxUploadBytes
          ? startStreamedUploads(services, first, {
              pathAndQuery,
              headers: headersFor(contentType, contentLength),
            })
          : undefined;
      // A lost lock stops the uploads at once: a newer writer of the path may be running.
      const stopUploads = () => streaming?.forwarder.cancel();
      lock.signal.addEventListener('abort', stopUploads, { once: true });
      // Failed attempts, for the roll-back (a refused connection touched nothing).
      const attempts: { backend: string; reason: string; error?: unknown }[] = [];
      try {
        upload = await spoolUpload(
          request.raw,
          { contentType, contentLength },
          // A streamed file's body is not kept past memoryBytes: a stand-in copies it from an owner that took it.
          { ...services.config.spool, budget: services.spoolBudget, forwardedOnly: !isDirectory },
          streaming?.forwarder,
        );
        services.metrics.bytesIn.inc(upload.totalBytes);
        services.metrics.spoolBytes.inc(upload.totalBytes);
        const spooled = upload;
        const streamed = streaming ? await streaming.outcomes() : [];
        const holders = streamed.filter((o) => o.ok).map((o) => o.backend.name);
        const failures: { backend: string; reason: string; error?: unknown }[] = streamed
          .filter((o) => !o.ok)
          .map((o) => ({ backend: o.backend.name, reason: o.reason ?? 'failed', error: o.error }));
        attempts.push(...failures);
        // Stand-ins a body that was neither kept nor taken by any owner cannot reach (nothing to copy from).
        const untried: string[] = [];
        const tried = new Set(streamed.map((o) => o.backend.name));
        const standIns = candidates.filter((b) => !tried.has(b.name));
        const streamedHolders = streamed.filter((o) => o.ok).map((o) => o.backend);
        if (holders.length < quorum && !spooled.replay && streamedHolders.length === 0) {
          untried.push(...standIns.map((b) => b.name));
        } else if (holders.length < quorum) {
          // Complete the quorum on the next candidates (sloppy quorum): from the spool, or copied from an owner.
          const outcome = await runQuorum(standIns, quorum - holders.length, async (backend: Backend) => {
            lock.signal.throwIfAborted();
            // Recorded before the bytes go out, so a roll-back covers this stand-in too.
            if (intent) await manifest.touchIntent(charmId, lock, backend.name);
            if (!spooled.replay) {
              return copyToStandIn({
                charmId,
                path,
                authorization: request.headers.authorization,
                lock,
                sources: streamedHolders,
                target: backend,
                file: { ...spooled.file, mode },
              });
            }
            const body = spooled.replay();
            const headers = headersFor(spooled.contentType, String(spooled.totalBytes));
            return Buffer.isBuffer(body)
              ? postWholeToBackend(services, backend, { pathAndQuery, headers, body, signal: lock.signal })
              : callBackendExpectOk(services, backend, {
                  method: 'POST',
                  pathAndQuery,
                  headers,
                  body,
                  signal: lock.signal,
                });
          });
          holders.push(...outcome.successes.map((s) => s.backend.name));
          failures.push(...outcome.failures);
          attempts.push(...outcome.failures);
        }
        lock.signal.throwIfAborted();
        if (holders.length < quorum) {
          services.metrics.quorumFailures.inc({ operation: 'write' });
          throw new QuorumMissed(holders.length, failures, untried);
        }
        if (isDirectory) return reply.code(200).send();
        let committed: number;
        try {
          committed = await manifest.commitWrite(charmId, path, { ...spooled.file, mode, holders }, lock);
        } catch (err) {
          if (err instanceof LockLostError) throw err;
          throw new StateUnavailableError(err);
        }
        const job = { charmId, path, version: committed, ...spooled.file, mode, sources: holders };
        services.unresolvedWrites.forget(charmId, path);
        const remaining = placement.owners(charmId).filter((owner) => !holders.includes(owner.name));
        const replicateJob = { kind: 'replicate' as const, ...job };
        const backupJob = { kind: 'backup' as const, ...job };
        // A body still in memory goes from here to the healthy remaining owners and to S3, after the answer;
        // their jobs wait as fallbacks (replication/remaining-copies.ts).
        const body = services.config.remainingCopies.enabled ? spooled.replay?.() : undefined;
        const inMemory = Buffer.isBuffer(body) ? body : undefined;
        const healthy = inMemory ? placement.writeCandidates(charmId).map((b) => b.name) : [];
        const ownerCopies = remaining.filter((owner) => healthy.includes(owner.name));
        const backupStore = inMemory && services.backupStore;
        const backupCopy = backupStore !== undefined;
        const fallbackMs = services.config.remainingCopies.fallbackMs;
        const jobs: JobAdd[] = [
          ...remaining.map((owner) => ({
            backend: owner.name,
            job: replicateJob,
            ...(ownerCopies.includes(owner) && { delayMs: fallbackMs }),
          })),
          { s3: backupJob, ...(backupCopy && { delayMs: fallbackMs }) },
        ];
        let enqueued = () => {};
        if (inMemory && (ownerCopies.length > 0 || backupCopy)) {
          const headers = headersFor(spooled.contentType, String(spooled.totalBytes));
          const acknowledged = { charmId, path, version: committed, lock };
          copies = services.remainingCopies.copy({
            charmId,
            lock,
            targets: [
              ...ownerCopies.map((backend) =>
                ownerCopy(manifest, acknowledged, backend.name, jobIdOf(replicateJob), () =>
                  postWholeToBackend(services, backend, {
                    pathAndQuery,
                    headers,
                    body: inMemory,
                    signal: lock.signal,
                  }),
                ),
              ),
              ...(backupStore
                ? [
                    backupCopyOf(manifest, backupStore, acknowledged, jobIdOf(backupJob), {
                      ...spooled.file,
                      mode,
                      bytes: fileBytesOf(inMemory, spooled.file.size),
                    }),
                  ]
                : []),
            ],
            enqueued: new Promise<void>((resolve) => {
              enqueued = resolve;
            }),
            log: request.log,
          });
          lock.holdUntil(copies); // nobody else changes or judges the path until the copies are recorded
        }
        // The write is on a quorum and recorded: a job that could not be enqueued is the healer's to repair.
        await finishChange(services, request, lock, holders.length, committed, jobs).finally(enqueued);
        request.log.info(
          { charmId, version: committed, holders, size: spooled.file.size },
          'write committed',
        );
        return reply.code(200).send();
      } catch (err) {
        // Committed on the Redis primary, only not confirmed by its replicas: the manifest names these bytes.
        if (err instanceof NotReplicatedError) throw err;
        // Not acknowledged: the touched backends go back to the last acknowledged state before the answer.
        streaming?.forwarder.cancel();
        const aftermath = intent
          ? await rollBackFailedWrite(services, request, lock, intent, attempts)
          : undefined;
        throw failedWriteError(err, aftermath, quorum);
      } finally {
        lock.signal.removeEventListener('abort', stopUploads);
      }
    } finally {
      if (upload) {
        const spooled = upload;
        const giveBack = () => {
          services.metrics.spoolBytes.dec(spooled.totalBytes);
          return spooled.discard();
        };
        if (copies) void copies.then(giveBack);
        else await giveBack();
      }
      await lock.release().catch((err) => request.log.warn({ err }, 'could not release a path lock'));
    }
  });

  app.delete('/v1/fs/*', async (request, reply) => {
    const { charmId } = request;
    const { path } = fsTarget(request);
    request.raw.resume();
    const lock = await lockPath(services, charmId, path);
    try {
      // A delete cannot be undone: first make sure W backends answer, so a doomed delete touches none.
      const candidates = await answeringFirst(
        services,
        placement.deleteCandidates(charmId),
        quorum,
        path,
        request,
      );
      const outcome = await runQuorum(candidates, quorum, async (backend: Backend) => {
        await lock.assertHeld(); // a gateway frozen past the TTL must not delete under a newer writer
        return callBackendExpectOk(services, backend, {
          method: 'DELETE',
          pathAndQuery: `/v1/fs${path}`,
          headers: userAuthorization(request),
        });
      });
      const holders = outcome.successes.map((s) => s.backend.name);
      if (holders.length < quorum) {
        services.metrics.quorumFailures.inc({ operation: 'delete' });
        throw new NoQuorumError(
          quorum,
          holders.length,
          outcome.failures,
          holders.length === 0
            ? NOTHING_CHANGED
            : `it was applied on ${holders.join(', ')} only, where read repair and the healer bring the path back`,
        );
      }
      let version: number;
      try {
        version = await manifest.commitDelete(charmId, path, holders, lock);
      } catch (err) {
        const aftermath = `the delete was applied on ${holders.join(', ')} but not recorded; the healer repairs the rest`;
        if (err instanceof LockLostError) throw new LockLostChangeError(err.message, aftermath);
        throw new StateUnavailableError(err, aftermath);
      }
      const job = { kind: 'delete' as const, charmId, path, version };
      // Every other backend, not only owners: stand-ins of earlier sloppy writes may hold copies too.
      await finishChange(services, request, lock, holders.length, version, [
        ...placement
          .all()
          .filter((backend) => !holders.includes(backend.name))
          .map((backend) => ({ backend: backend.name, job })),
        { s3: job },
      ]);
      request.log.info({ charmId, version, holders }, 'delete committed');
      return reply.code(200).send();
    } finally {
      await lock.release().catch((err) => request.log.warn({ err }, 'could not release a path lock'));
    }
  });
}

/**
 * Orders candidates so that the first `needed` answered a HEAD of the path just now; throws NoQuorumError when
 * fewer than `needed` answer at all.
 */
async function answeringFirst(
  services: GatewayServices,
  candidates: Backend[],
  needed: number,
  path: string,
  request: FastifyRequest,
): Promise<Backend[]> {
  const answering: Backend[] = [];
  const failures: { backend: string; reason: string }[] = [];
  for (const backend of candidates) {
    if (answering.length === needed) break;
    try {
      const response = await callBackend(services, backend, {
        method: 'HEAD',
        pathAndQuery: `/v1/fs${path}`,
        headers: userAuthorization(request),
      });
      response.resume();
      const status = response.statusCode ?? 0;
      if (status === 200 || status === 404) answering.push(backend);
      else failures.push({ backend: backend.name, reason: `answered ${status}` });
    } catch (err) {
      failures.push({ backend: backend.name, reason: (err as Error).message });
    }
  }
  if (answering.length < needed) throw new NoQuorumError(needed, answering.length, failures);
  return [...answering, ...candidates.filter((b) => !answering.includes(b))];
}

/** The quorum was missed (an internal signal, turned into the answer by `failedWriteError`). */
class QuorumMissed extends Error {
  readonly got: number;
  readonly failures: { backend: string; reason: string; error?: unknown }[];
  /** Stand-ins left untried: the streamed body was not kept and no owner took it, so nothing could be copied. */
  readonly untried: string[];
  constructor(
    got: number,
    failures: { backend: string; reason: string; error?: unknown }[],
    untried: string[] = [],
  ) {
    super('quorum missed');
    this.got = got;
    this.failures = failures;
    this.untried = untried;
  }
}

/**
 * The last round trip of an acknowledged change: its jobs (with their pending markers), the replica wait and the
 * lock's release go out together. A job that could not be added is logged for the healer to repair; the client
 * hears OK only once the manifest change (and its jobs) is on the Redis replicas a failover promotes.
 */
async function finishChange(
  services: GatewayServices,
  request: FastifyRequest,
  lock: PathLock,
  holders: number,
  version: number,
  jobs: JobAdd[],
): Promise<void> {
  // Queues that cannot load their scripts (Redis away) enqueue nothing; the wait and the release still run.
  const unready = await services.queues.ready().then(
    () => undefined,
    (err: Error) => err,
  );
  const outcome = await services.manifest.finishChange(lock, () =>
    unready ? [Promise.reject(unready)] : services.queues.send(jobs),
  );
  const failed = failedAdds(outcome.answers);
  if (failed.length > 0) {
    request.log.error(
      { err: failed[0], failed: failed.length, charmId: request.charmId, version },
      'could not enqueue the jobs of a change; the healer will repair',
    );
  }
  const { notReplicated } = outcome;
  if (!notReplicated) return;
  const reason =
    notReplicated instanceof ManifestNotReplicatedError
      ? notReplicated
      : new Error(`Redis did not answer the replica check (${notReplicated.message})`);
  throw new NotReplicatedError(reason, holders);
}

/**
 * The planned candidates, or (when the version being replaced is on the first W only) the order of
 * `sparingAHolder`, with the intent retargeted before any byte goes out. Only for an intent that names exactly
 * the planned first W: a backend an earlier failed write touched is no copy to spare.
 */
async function spareAHolder(
  services: GatewayServices,
  charmId: string,
  lock: PathLock,
  intent: WriteIntent,
  planned: Backend[],
): Promise<Backend[]> {
  const quorum = services.config.writeQuorum;
  const plannedFirst = planned.slice(0, quorum).map((b) => b.name);
  const holders = intent.previous?.kind === 'file' ? intent.previous.holders : [];
  const onlyPlanned =
    intent.touched.length === plannedFirst.length && intent.touched.every((b) => plannedFirst.includes(b));
  if (!onlyPlanned) return planned;
  const ordered = sparingAHolder(planned, holders, quorum, services.placement.isHealthy);
  const first = ordered.slice(0, quorum).map((b) => b.name);
  const added = first.find((name) => !plannedFirst.includes(name));
  const spared = plannedFirst.find((name) => !first.includes(name));
  if (!added || !spared) return planned;
  try {
    await services.manifest.retargetIntent(charmId, lock, added, spared);
  } catch (err) {
    if (err instanceof LockLostError) throw new LockLostChangeError(err.message);
    throw new StateUnavailableError(err);
  }
  return ordered;
}

/**
 * The answer to a write that was not acknowledged, saying what became of the backends it reached (see the write
 * path's failure table in the gateway README).
 */
function failedWriteError(err: unknown, aftermath: string | undefined, quorum: number): unknown {
  const after = aftermath ?? NOTHING_CHANGED;
  if (err instanceof QuorumMissed) {
    if (err.got === 0) {
      const refusal = sharedRefusal(err.failures, quorum);
      if (refusal) return refusal;
      if (err.untried.length === 0 && err.failures.every((f) => !(f.error instanceof BackendRefusedError)))
        return new ReadOnlyError(err.failures);
    }
    const notTried = err.untried.map((backend) => ({
      backend,
      reason: 'not tried (the body went to the first owners as it arrived, and none of them took it)',
    }));
    return new NoQuorumError(quorum, err.got, [...err.failures, ...notTried], after);
  }
  if (err instanceof LockLostError) return new LockLostChangeError(err.message, after);
  if (err instanceof StateUnavailableError) return new StateUnavailableError(err.cause, after);
  if (err instanceof GatewayError && after !== NOTHING_CHANGED && !after.endsWith(NOTHING_CHANGED)) {
    err.message = `${err.message} (${after})`;
  }
  return err;
}
