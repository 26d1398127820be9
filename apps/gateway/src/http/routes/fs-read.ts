import type { ServerResponse } from 'node:http';
import { Writable } from 'node:stream';
import { fsPathFromUrl } from '@cring/charm';
import type { ManifestEntry } from '@cring/manifest';
import type { FastifyInstance } from 'fastify';
import {
  contentLength,
  forwardableHeaders,
  relayAnswer,
  type StreamedAnswer,
} from '../../backends/backend-http.ts';
import { BadRequestError, NoBackendError } from '../../errors.ts';
import { serveFromBackup } from '../../read-only/backup-reads.ts';
import { isMissingUser, streamFromBackend, userAuthorization } from '../backend-calls.ts';
import type { GatewayServices } from '../services.ts';

/**
 * GET and HEAD /v1/fs/*, read-your-writes: holders of the path's current version first, then owners with no
 * pending change for this user, then the rest. A backend that should hold the current version but answers 404
 * gets a repair job (read repair) and the next candidate is asked. Answers stream through untouched.
 */
export function registerFsReadRoutes(app: FastifyInstance, services: GatewayServices): void {
  const { manifest, placement, queues, readBalancer } = services;

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v1/fs/*',
    handler: async (request, reply) => {
      const { charmId } = request;
      const target = fsPathFromUrl(request.raw.url ?? '');
      if (!target) throw new BadRequestError('not a /v1/fs/ path');
      const { path } = target;
      request.raw.resume(); // the charm client may send a body with GET; the server ignores it

      let governing: (ManifestEntry & { path: string }) | undefined;
      let pending = new Set<string>();
      try {
        ({ governing, pending } = await manifest.readRoute(charmId, path));
      } catch (err) {
        request.log.warn({ err }, 'manifest unreachable: reading by preference order only');
      }
      const currentFile = governing?.kind === 'file' && governing.path === path ? governing : undefined;
      const holders = new Set(currentFile?.holders ?? []);
      const shouldHold = (backend: string) =>
        currentFile !== undefined && (holders.has(backend) || !pending.has(backend));

      const failures: { backend: string; reason: string }[] = [];
      // A backend that answered 5xx is up: its error is the answer, not a reason to read from the backup.
      let answeredWithError = false;
      const misses: string[] = [];
      let notFound: StreamedAnswer | undefined;
      // Healthy holders of the current version with nothing pending all have its bytes: any of them may answer.
      const candidates = readBalancer.order(
        placement.readCandidates(charmId, holders, pending),
        (name) => holders.has(name) && !pending.has(name) && placement.isHealthy(name),
      );
      // Set on the first 404 of a path with no file entry: backends holding files below it (it is a directory).
      let directoryHolders: Set<string> | undefined;
      const filesBelow = async () => {
        if (!directoryHolders) directoryHolders = await holdersBelow(charmId, path);
        return directoryHolders;
      };
      for (let index = 0; index < candidates.length; index++) {
        const backend = candidates[index] as (typeof candidates)[number];
        const load = readBalancer.start(backend.name);
        let relaying = false;
        let answer: StreamedAnswer;
        try {
          answer = await streamFromBackend(services, backend, {
            method: request.method === 'HEAD' ? 'HEAD' : 'GET',
            pathAndQuery: `/v1/fs${path}`,
            headers: userAuthorization(request),
            // A 200 streams straight into the client's response, head and body as the backend sent them.
            take: (status, rawHeaders) => {
              if (status !== 200) return undefined;
              relaying = true;
              reply.hijack();
              reply.raw.writeHead(200, forwardableHeaders(rawHeaders));
              if (misses.length === 0 || !currentFile) return reply.raw;
              // Holders that lost the version get their repair recorded before the answer ends (a client that
              // saw the file can then wait for the repair).
              return endingAfter(reply.raw, repairMisses(services, charmId, path, currentFile, misses));
            },
          });
        } catch (err) {
          if (relaying) {
            // The body broke after the head went out: the client's connection is closed, no other backend can help.
            request.log.warn(
              { backend: backend.name, err: (err as Error).message },
              'download broke mid-body',
            );
            return;
          }
          failures.push({ backend: backend.name, reason: (err as Error).message });
          continue;
        } finally {
          load.finished();
        }
        const status = answer.status;
        if (relaying) {
          if (request.method === 'GET') services.metrics.bytesOut.inc(contentLength(answer.rawHeaders));
          return;
        }
        const body = answer.body ?? Buffer.alloc(0);
        if (status === 404 && isMissingUser(body)) {
          failures.push({ backend: backend.name, reason: 'does not know this user yet' });
        } else if (status === 404 && (shouldHold(backend.name) || pending.has(backend.name))) {
          // It should have had it (or is behind): someone else may answer, and it gets repaired.
          if (shouldHold(backend.name)) misses.push(backend.name);
          notFound ??= answer;
        } else if (status === 404 && !currentFile && (await filesBelow()).size > 0) {
          // The manifest knows files below this path, so it is a directory this backend lacks (a new owner after
          // a ring change, before the healer copied it): ask the backends that hold those files first.
          notFound ??= answer;
          const rest = candidates.slice(index + 1);
          candidates.splice(
            index + 1,
            rest.length,
            ...rest.filter((b) => directoryHolders?.has(b.name)),
            ...rest.filter((b) => !directoryHolders?.has(b.name)),
          );
        } else if (status >= 500) {
          answeredWithError = true;
          failures.push({ backend: backend.name, reason: `answered ${status}` });
        } else {
          reply.hijack();
          relayAnswer(answer, reply.raw);
          return;
        }
      }
      if (notFound) {
        if (misses.length > 0 && currentFile) {
          request.log.error(
            { charmId, version: currentFile.version, misses },
            'no reachable backend holds the current version',
          );
        }
        reply.hijack();
        relayAnswer(notFound, reply.raw);
        return;
      }
      if (services.backupStore && !answeredWithError) {
        // No backend answered at all: the user's data is read from the S3 backup (read-only mode).
        request.log.warn({ charmId, failures }, 'no backend reachable: reading from the S3 backup');
        try {
          await serveFromBackup(services.backupStore, charmId, path, reply.raw, request.method === 'HEAD');
          reply.hijack();
          return;
        } catch (err) {
          if (reply.raw.headersSent) throw err; // the error handler ends the half-sent answer
          request.log.warn({ err, charmId }, 'the S3 backup could not answer either');
          failures.push({ backend: 'S3 backup', reason: (err as Error).message });
        }
      }
      throw new NoBackendError('this read', failures);
    },
  });

  /** Backends holding a current file version somewhere below path; empty when there is none or Redis is down. */
  async function holdersBelow(charmId: string, path: string): Promise<Set<string>> {
    const holders = new Set<string>();
    try {
      for (const entry of (await manifest.entriesWithin(charmId, path)).values()) {
        if (entry.kind === 'file') for (const holder of entry.holders) holders.add(holder);
      }
    } catch {
      // no manifest: the 404 stands
    }
    return holders;
  }

  /** Holders that lost the current version stop being trusted for it and get a repair job. */
  async function repairMisses(
    services_: GatewayServices,
    charmId: string,
    path: string,
    entry: ManifestEntry & { kind: 'file' },
    misses: string[],
  ) {
    try {
      const sources = entry.holders.filter((h) => !misses.includes(h));
      for (const backend of misses) {
        await manifest.removeHolder(charmId, path, entry.version, backend);
        await queues.enqueueForBackend(
          backend,
          {
            kind: 'replicate',
            charmId,
            path,
            version: entry.version,
            sha256: entry.sha256,
            size: entry.size,
            mode: entry.mode,
            sources,
          },
          { idSuffix: `read-repair-${Math.floor(Date.now() / 60_000)}` },
        );
      }
      services_.logger.warn({ charmId, version: entry.version, misses }, 'read repair enqueued');
    } catch (err) {
      services_.logger.warn({ err, charmId }, 'could not enqueue a read repair');
    }
  }
}

/** A writable into `res` that ends `res` only once `before` settled (it never rejects). */
function endingAfter(res: ServerResponse, before: Promise<void>): Writable {
  const into = new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (res.write(chunk)) done();
      else res.once('drain', () => done());
    },
    final(done) {
      void before.then(() => res.end(() => done()));
    },
    destroy(err, done) {
      if (err) res.destroy(err);
      done(err);
    },
  });
  // The client went away: stop the relay (undici then drops the backend request) instead of waiting for a drain.
  res.once('close', () => {
    if (!res.writableFinished) into.destroy(new Error('the client closed the connection'));
  });
  return into;
}
