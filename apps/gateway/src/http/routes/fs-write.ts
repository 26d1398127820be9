import { type Backend, fsPathFromUrl } from '@cring/charm';
import { NotReplicatedError as ManifestNotReplicatedError } from '@cring/manifest';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import {
  BadRequestError,
  InsufficientStorageError,
  NoQuorumError,
  NotReplicatedError,
  ReadOnlyError,
  StateUnavailableError,
} from '../../errors.ts';
import { runQuorum } from '../../replication/quorum.ts';
import { startStreamedUploads } from '../../replication/streamed-uploads.ts';
import { spoolUpload } from '../../spool/upload-spool.ts';
import { callBackend, callBackendExpectOk, userAuthorization } from '../backend-calls.ts';
import { lockPath } from '../path-lock.ts';
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
 * A change that misses the quorum is answered 503 and leaves the manifest and the queues untouched.
 */
export function registerFsWriteRoutes(app: FastifyInstance, services: GatewayServices): void {
  const { manifest, queues, placement } = services;
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
    const lock = await lockPath(services, charmId, path);
    try {
      const candidates = withRoom();
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
          ? startStreamedUploads(services, candidates.slice(0, quorum), {
              pathAndQuery,
              headers: headersFor(contentType, contentLength),
            })
          : undefined;
      const upload = await spoolUpload(
        request.raw,
        { contentType, contentLength },
        { ...services.config.spool, budget: services.spoolBudget },
        streaming?.forwarder,
      );
      services.metrics.bytesIn.inc(upload.totalBytes);
      services.metrics.spoolBytes.inc(upload.totalBytes);
      try {
        const streamed = streaming ? await streaming.outcomes() : [];
        const holders = streamed.filter((o) => o.ok).map((o) => o.backend.name);
        const failures = streamed
          .filter((o) => !o.ok)
          .map((o) => ({ backend: o.backend.name, reason: o.reason ?? 'failed' }));
        if (holders.length < quorum) {
          // Complete the quorum from the spool on the next candidates (sloppy quorum).
          const tried = new Set(streamed.map((o) => o.backend.name));
          const outcome = await runQuorum(
            candidates.filter((b) => !tried.has(b.name)),
            quorum - holders.length,
            (backend: Backend) =>
              callBackendExpectOk(services, backend, {
                method: 'POST',
                pathAndQuery,
                headers: headersFor(upload.contentType, String(upload.totalBytes)),
                body: upload.replay(),
              }),
          );
          holders.push(...outcome.successes.map((s) => s.backend.name));
          failures.push(...outcome.failures);
        }
        if (holders.length < quorum) services.metrics.quorumFailures.inc({ operation: 'write' });
        if (holders.length === 0) throw new ReadOnlyError(failures);
        if (holders.length < quorum) {
          await forgetPartialCopies(services, charmId, path, holders);
          throw new NoQuorumError(quorum, holders.length, failures);
        }
        // A directory (ModeDir bit) has no content to version; the server only creates it.
        if (mode >= MODE_DIR_BIT) return reply.code(200).send();
        let version: number;
        try {
          version = await manifest.commitWrite(charmId, path, { ...upload.file, mode, holders });
        } catch (err) {
          throw new StateUnavailableError(err);
        }
        const job = { charmId, path, version, ...upload.file, mode, sources: holders };
        try {
          await Promise.all([
            ...placement
              .owners(charmId)
              .filter((owner) => !holders.includes(owner.name))
              .map((owner) => queues.enqueueForBackend(owner.name, { kind: 'replicate', ...job })),
            queues.enqueueForS3({ kind: 'backup', ...job }),
          ]);
        } catch (err) {
          // The write is on a quorum and recorded: acknowledge it; the healer enqueues what is missing.
          request.log.error(
            { err, charmId, version },
            'could not enqueue replication jobs; the healer will repair',
          );
        }
        await confirmReplicated(services, holders.length);
        request.log.info({ charmId, version, holders, size: upload.file.size }, 'write committed');
        return reply.code(200).send();
      } finally {
        services.metrics.spoolBytes.dec(upload.totalBytes);
        await upload.discard();
      }
    } finally {
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
      const outcome = await runQuorum(candidates, quorum, (backend: Backend) =>
        callBackendExpectOk(services, backend, {
          method: 'DELETE',
          pathAndQuery: `/v1/fs${path}`,
          headers: userAuthorization(request),
        }),
      );
      const holders = outcome.successes.map((s) => s.backend.name);
      if (holders.length < quorum) {
        services.metrics.quorumFailures.inc({ operation: 'delete' });
        throw new NoQuorumError(quorum, holders.length, outcome.failures);
      }
      let version: number;
      try {
        version = await manifest.commitDelete(charmId, path, holders);
      } catch (err) {
        throw new StateUnavailableError(err);
      }
      try {
        // Every other backend, not only owners: stand-ins of earlier sloppy writes may hold copies too.
        await Promise.all([
          ...placement
            .all()
            .filter((backend) => !holders.includes(backend.name))
            .map((backend) =>
              queues.enqueueForBackend(backend.name, { kind: 'delete', charmId, path, version }),
            ),
          queues.enqueueForS3({ kind: 'delete', charmId, path, version }),
        ]);
      } catch (err) {
        request.log.error({ err, charmId, version }, 'could not enqueue delete jobs; the healer will repair');
      }
      await confirmReplicated(services, holders.length);
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

/**
 * Backends that took a write which then missed the quorum now hold unacknowledged bytes: they no longer hold the
 * manifest's version of the path, so reads stop trusting them there until a repair restores it.
 */
async function forgetPartialCopies(
  services: GatewayServices,
  charmId: string,
  path: string,
  backends: string[],
) {
  if (backends.length === 0) return;
  try {
    const entry = await services.manifest.entry(charmId, path);
    if (entry?.kind !== 'file') return;
    for (const backend of backends)
      await services.manifest.removeHolder(charmId, path, entry.version, backend);
  } catch (err) {
    services.logger.warn({ err, charmId }, 'could not update holders after a failed quorum');
  }
}

/** The client hears OK only once the manifest change (and its jobs) is on the Redis replicas a failover promotes. */
async function confirmReplicated(services: GatewayServices, holders: number): Promise<void> {
  try {
    await services.manifest.confirmReplicated();
  } catch (err) {
    const reason =
      err instanceof ManifestNotReplicatedError
        ? err
        : new Error(`Redis did not answer the replica check (${(err as Error).message})`);
    throw new NotReplicatedError(reason, holders);
  }
}
