import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { type Backend, fsPathFromUrl } from '@cring/charm';
import { fileVersion } from '@cring/jobs';
import type { ManifestEntry, WriteIntent } from '@cring/manifest';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { relayAnswer, relayAnswerSized } from '../../backends/answer-relay.ts';
import { readSmallBody, relayResponse, relaySized, relayWhole } from '../../backends/backend-http.ts';
import type { BackendAnswer } from '../../backends/socket-reads.ts';
import { BadRequestError, NoBackendError } from '../../errors.ts';
import { serveFromBackup } from '../../read-only/backup-reads.ts';
import {
  agreedAnswer,
  bodyFingerprint,
  fileFingerprint,
  listingFingerprint,
  type OwnerAnswer,
} from '../../reads/owner-agreement.ts';
import { mayUseReadAhead, type ReadAhead, readAheadTarget, startReadAhead } from '../../reads/read-ahead.ts';
import { callBackend, isMissingUser, readFromBackend, userAuthorization } from '../backend-calls.ts';
import type { GatewayServices } from '../services.ts';

// The charm server's own answer for a path that does not exist.
const FILE_NOT_FOUND = Buffer.from('{"message":"file not found"}\n');

/**
 * A current file up to this size is read whole from the backend before anything is relayed: a copy of the wrong
 * size (the backend sends no Content-Length above 2 KB) is skipped for the next candidate, and head and body leave
 * in one write. Larger files stream, their size checked as they pass (relayAnswerSized).
 */
export const WHOLE_READ_BYTES = 64 * 1024;

/** A directory answer (the server's FileInfo JSON) rather than a file's bytes. */
const isListing = (response: { headers: Record<string, string | string[] | undefined> }) =>
  String(response.headers['content-type'] ?? '').startsWith('application/json');

/**
 * GET and HEAD /v1/fs/*, read-your-writes: holders of the path's current version first, then owners with no
 * pending change for this user, then the rest. A backend that should hold the current version but answers 404
 * gets a repair job (read repair) and the next candidate is asked. Answers stream through untouched. Only an
 * answer the manifest agrees with is relayed as a 200: never a file a tombstone governs, a non-holder's copy only
 * at the current version's size, never the bytes of a write that was not acknowledged (see the write intents).
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
      const backendRead = (backend: Backend) =>
        readFromBackend(services, backend, {
          method: request.method === 'HEAD' ? 'HEAD' : 'GET',
          pathAndQuery: `/v1/fs${path}`,
          headers: userAuthorization(request),
        });
      // Sent while the manifest is asked; the plan decides whether its answer stands (reads/read-ahead.ts).
      const aheadTo = services.config.readAhead
        ? readAheadTarget(placement.owners(charmId), placement.isHealthy, readBalancer)
        : undefined;
      const ahead = aheadTo ? startReadAhead(aheadTo, () => backendRead(aheadTo), readBalancer) : undefined;
      try {
        await readPlanned(request, reply, charmId, path, backendRead, ahead);
      } finally {
        ahead?.discard();
      }
    },
  });

  /** The read itself, once the path is known good: plan, candidates in order, the first relayable answer. */
  async function readPlanned(
    request: FastifyRequest,
    reply: FastifyReply,
    charmId: string,
    path: string,
    backendRead: (backend: Backend) => Promise<BackendAnswer>,
    ahead: ReadAhead | undefined,
  ): Promise<void> {
    let governing: (ManifestEntry & { path: string }) | undefined;
    let pending = new Set<string>();
    let intent: WriteIntent | undefined;
    let intentInFlight = false;
    let manifestReachable = false;
    try {
      ({ governing, pending, intent, intentInFlight } = await manifest.readPlan(charmId, path));
      manifestReachable = true;
      services.unresolvedWrites.forget(charmId, path); // the intent in Redis governs again
    } catch (err) {
      request.log.warn({ err }, 'manifest unreachable: reading by preference order only');
    }
    const currentFile = governing?.kind === 'file' && governing.path === path ? governing : undefined;
    const holders = new Set(currentFile?.holders ?? []);
    const shouldHold = (backend: string) =>
      currentFile !== undefined && (holders.has(backend) || !pending.has(backend));
    // A tombstone governs: no file answer is relayed; a listing only when files were written below it since.
    const deleted = governing?.kind === 'tombstone' ? governing : undefined;
    const rewrittenBelow = deleted ? await newerFilesBelow(charmId, path, deleted.version) : false;
    // Backends an unacknowledged write reached: untrusted here (excluded once the write failed or its writer died).
    const touched = new Set(intent?.touched ?? []);
    const abandonedOn = new Set([
      ...(intentInFlight
        ? []
        : manifestReachable
          ? touched
          : services.unresolvedWrites.touched(charmId, path)),
      // A refusal not on record yet: its intent is missing from Redis even once Redis answers.
      ...services.refusalRecords.touched(charmId, path),
    ]);
    /** Whether a backend's 200 may be relayed as what the path is now. */
    const servable = (backend: string, response: BackendAnswer) => {
      const listing = isListing(response);
      if (deleted) return listing && rewrittenBelow;
      if (currentFile) {
        // Any copy, a holder's too, only at the current version's size: a backend mid-write (the server
        // rewrites a file in place) or holding another version is skipped.
        if (listing) return false;
        const length = response.headers['content-length'];
        return length === undefined || Number(length) === currentFile.size;
      }
      return listing || !touched.has(backend); // a new path's bytes are not acknowledged yet
    };
    /**
     * How a backend's 200 is relayed, or undefined when it may not be: a copy the manifest says is not the path
     * now, or a small current file whose body is not exactly its size (read whole here: see WHOLE_READ_BYTES).
     */
    const relayable = async (
      backend: string,
      response: BackendAnswer,
    ): Promise<{ whole?: Buffer; sized?: ManifestEntry & { kind: 'file' } } | undefined> => {
      if (!servable(backend, response)) return undefined;
      if (
        !governing &&
        !isListing(response) &&
        !(await stillUnwrittenFor(charmId, path, backend, Number(response.headers['content-length'])))
      )
        return undefined;
      const sized = currentFile && request.method === 'GET' && !isListing(response) ? currentFile : undefined;
      if (!sized || sized.size > WHOLE_READ_BYTES) return { sized };
      // Not the current version's size after all (or the answer broke): as a mismatched Content-Length.
      const whole = await response.readExactly(sized.size);
      return whole ? { whole, sized } : undefined;
    };
    const relay = async (
      response: BackendAnswer,
      how: { whole?: Buffer; sized?: ManifestEntry & { kind: 'file' } },
    ) => {
      reply.hijack();
      if (how.whole) {
        services.metrics.bytesOut.inc(how.whole.length);
        relayWhole(response, reply.raw, how.whole);
      } else if (how.sized) {
        services.metrics.bytesOut.inc(await relayAnswerSized(response, reply.raw, how.sized.size));
      } else {
        services.metrics.bytesOut.inc(await relayAnswer(response, reply.raw));
      }
    };

    const failures: { backend: string; reason: string }[] = [];
    const misses: string[] = [];
    // Backends whose 200 was put aside (see servable), for the answer when nothing else is relayed.
    const passedOver: { backend: string; reason: string }[] = [];
    const passOver = (name: string) => {
      passedOver.push({ backend: name, reason: 'holds other bytes than the current version' });
      if (shouldHold(name)) misses.push(name);
    };
    let notFound: { response: BackendAnswer; body: Buffer } | undefined;
    let missingUser: { response: BackendAnswer; body: Buffer } | undefined;
    // The first 5xx answer, and how many backends answered exactly that status.
    let refusal: { response: BackendAnswer; body: Buffer } | undefined;
    let answered = 0;
    // A backend that answered 5xx is up: its error is the answer, not a reason to read from the backup.
    let answeredWithError = false;
    // Healthy holders of the current version with nothing pending all have its bytes: any of them may answer.
    const interchangeable = (name: string) =>
      holders.has(name) && !pending.has(name) && placement.isHealthy(name);
    const allCandidates = readBalancer.order(
      placement.readCandidates(charmId, holders, pending),
      interchangeable,
      ahead?.backend.name,
    );
    if (!manifestReachable) {
      // No entry says what is current: only what the owners agree on is answered (reads/owner-agreement.ts).
      ahead?.discard();
      await readByOwnerAgreement(services, request, reply, charmId, path, abandonedOn);
      return;
    }
    const candidates = allCandidates.filter((backend) => !abandonedOn.has(backend.name));
    let aheadFailure: { backend: string; error: Error } | undefined;
    if (ahead && mayUseReadAhead(ahead.backend.name, candidates, interchangeable)) {
      const early = await ahead.take();
      if (early instanceof Error) {
        // Its transport failed: that stands for its turn (a stalled backend is not waited for twice).
        services.metrics.readAheads.inc({ outcome: 'failed' });
        aheadFailure = { backend: ahead.backend.name, error: early };
      } else if (early) {
        const relayed = early.statusCode === 200 ? await relayable(ahead.backend.name, early) : undefined;
        if (relayed) {
          services.metrics.readAheads.inc({ outcome: 'relayed' });
          await relay(early, relayed);
          return;
        }
        // Not an answer to relay as it is: the backend is asked again in its turn, as without read ahead. An
        // error answer's small body is read, so its connection is kept.
        if (early.statusCode === 200) early.destroy();
        else await early.read().catch(() => undefined);
        services.metrics.readAheads.inc({ outcome: 'asked-again' });
      }
    } else if (ahead) {
      ahead.discard();
      services.metrics.readAheads.inc({ outcome: 'discarded' });
    }
    // Set on the first 404 of a path with no file entry: backends holding files below it (it is a directory).
    let directoryHolders: Set<string> | undefined;
    const filesBelow = async () => {
      if (!directoryHolders) directoryHolders = await holdersBelow(charmId, path);
      return directoryHolders;
    };
    for (let index = 0; index < candidates.length; index++) {
      const backend = candidates[index] as (typeof candidates)[number];
      const load = readBalancer.start(backend.name);
      let response: BackendAnswer;
      try {
        if (aheadFailure?.backend === backend.name) throw aheadFailure.error;
        response = await backendRead(backend);
      } catch (err) {
        load.finished();
        failures.push({ backend: backend.name, reason: (err as Error).message });
        continue;
      }
      // In flight until the answer is relayed or put aside.
      response.onFinished(() => load.finished());
      const status = response.statusCode;
      if (status === 200) {
        const relayed = await relayable(backend.name, response);
        if (!relayed) {
          // A copy the manifest says is not the path now (deleted, another version, unacknowledged bytes).
          response.destroy();
          passOver(backend.name);
          continue;
        }
        if (misses.length > 0 && currentFile)
          await repairMisses(services, charmId, path, currentFile, misses);
        await relay(response, relayed);
        return;
      }
      const body = await response.read().catch(() => Buffer.alloc(0));
      if (status === 404 && isMissingUser(body)) {
        missingUser ??= { response, body };
        failures.push({ backend: backend.name, reason: 'does not know this user yet' });
      } else if (status === 404 && (shouldHold(backend.name) || pending.has(backend.name))) {
        // It should have had it (or is behind): someone else may answer, and it gets repaired.
        if (shouldHold(backend.name)) misses.push(backend.name);
        notFound ??= { response, body };
      } else if (status === 404 && !currentFile && (await filesBelow()).size > 0) {
        // The manifest knows files below this path, so it is a directory this backend lacks (a new owner after
        // a ring change, before the healer copied it): ask the backends that hold those files first.
        notFound ??= { response, body };
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
        refusal ??= { response, body };
        if (refusal.response.statusCode === status) answered++;
      } else {
        reply.hijack();
        await relayAnswer(response, reply.raw, body);
        return;
      }
    }
    if (currentFile && passedOver.length > 0) {
      // A backend holds the path with other bytes (an overwrite in flight, a repair pending): the path exists,
      // so a lagging backend's 404 is not its answer, and neither are those bytes.
      throw new NoBackendError('the current version of this path', [...failures, ...passedOver]);
    }
    if (notFound) {
      if (misses.length > 0 && currentFile) {
        request.log.error(
          { charmId, version: currentFile.version, misses },
          'no reachable backend holds the current version',
        );
      }
      reply.hijack();
      await relayAnswer(notFound.response, reply.raw, notFound.body);
      return;
    }
    if (passedOver.length > 0 && !currentFile) {
      // Every copy that answered is deleted or unacknowledged: the path does not exist, as the server says it.
      return reply.code(404).header('content-type', 'application/json').send(FILE_NOT_FOUND);
    }
    if (refusal && answered === candidates.length) {
      // Every backend answered the same error of its own (e.g. a name too long): that answer, not a fallback.
      reply.hijack();
      await relayAnswer(refusal.response, reply.raw, refusal.body);
      return;
    }
    if (missingUser && failures.length === candidates.length) {
      // Every backend answered, and none knows the user: their own answer, not an outage.
      reply.hijack();
      await relayAnswer(missingUser.response, reply.raw, missingUser.body);
      return;
    }
    if (candidates.length < allCandidates.length && failures.length === candidates.length) {
      // The backends that answer hold a failed write's bytes: the last acknowledged state is not reachable.
      throw new NoBackendError('this path while a failed write of it is rolled back', failures);
    }
    if (services.backupStore && !answeredWithError) {
      // No backend answered at all: the user's data is read from the S3 backup (read-only mode).
      request.log.warn({ charmId, failures }, 'no backend reachable: reading from the S3 backup');
      await readFromBackup(services, request, reply, charmId, path, failures, deleted !== undefined);
      return;
    }
    throw new NoBackendError('this read', failures);
  }

  /**
   * A new path's file answered while the manifest knew nothing of it: a write may have begun after the manifest was
   * read (its bytes half-written, or never acknowledged). Look again: only bytes no write touched, or the version
   * just committed (at its size), are relayed.
   */
  async function stillUnwrittenFor(
    charmId: string,
    path: string,
    backend: string,
    size: number,
  ): Promise<boolean> {
    try {
      const [now, intent] = await Promise.all([
        manifest.governing(charmId, path),
        manifest.intent(charmId, path),
      ]);
      if (intent?.touched.includes(backend)) return false;
      if (now?.kind === 'tombstone') return false;
      return now?.kind !== 'file' || now.size === size;
    } catch {
      return false;
    }
  }

  /** True when a file was written below path after the tombstone (version) that deleted it. */
  async function newerFilesBelow(charmId: string, path: string, version: number): Promise<boolean> {
    try {
      for (const entry of (await manifest.entriesWithin(charmId, path)).values()) {
        if (entry.kind === 'file' && entry.version > version) return true;
      }
    } catch {
      // no manifest: nothing known below
    }
    return false;
  }

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
          { kind: 'replicate', ...fileVersion(charmId, path, entry), sources },
          { idSuffix: `read-repair-${Math.floor(Date.now() / 60_000)}` },
        );
      }
      services_.logger.warn({ charmId, version: entry.version, misses }, 'read repair enqueued');
    } catch (err) {
      services_.logger.warn({ err, charmId }, 'could not enqueue a read repair');
    }
  }
}

/**
 * Answers from the S3 backup while no backend is reachable, bounded by a deadline: an error or a frozen S3 ends
 * in a clear 503 (or a cut connection once a 200 started), never a request left hanging.
 */
async function readFromBackup(
  services: GatewayServices,
  request: FastifyRequest,
  reply: FastifyReply,
  charmId: string,
  path: string,
  failures: { backend: string; reason: string }[],
  deleted: boolean,
): Promise<void> {
  const store = services.backupStore;
  if (!store) throw new NoBackendError('this read', failures);
  if (deleted) {
    return void reply.code(404).header('content-type', 'application/json').send(FILE_NOT_FOUND);
  }
  const deadlineMs = services.config.backupReadTimeoutMs;
  reply.hijack();
  const res = reply.raw;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the S3 backup did not answer within ${deadlineMs} ms`)),
      deadlineMs,
    );
  });
  try {
    await Promise.race([serveFromBackup(store, charmId, path, res, request.method === 'HEAD'), deadline]);
  } catch (err) {
    request.log.warn({ err, charmId }, 'the S3 backup could not answer a read');
    if (res.headersSent) return void res.destroy();
    const error = new NoBackendError('this read', [
      ...failures,
      { backend: 's3 backup', reason: (err as Error).message },
    ]);
    const body = Buffer.from(`${JSON.stringify({ message: error.message })}\n`);
    res.writeHead(error.statusCode, { 'Content-Type': 'application/json', 'Content-Length': body.length });
    res.end(body);
  } finally {
    clearTimeout(timer);
  }
}

/** A file up to this size is kept from the owners' answers and relayed; a larger one is read again once agreed. */
const AGREEMENT_KEEP_BYTES = 1024 * 1024;

/**
 * A read while the manifest is unreachable: every owner (but those an unresolved write of this gateway touched)
 * is asked, and only an answer a read quorum of them give identically is relayed (see reads/owner-agreement.ts).
 */
async function readByOwnerAgreement(
  services: GatewayServices,
  request: FastifyRequest,
  reply: FastifyReply,
  charmId: string,
  path: string,
  untrusted: ReadonlySet<string>,
): Promise<void> {
  const { config, placement } = services;
  const readQuorum = config.replicationFactor - config.writeQuorum + 1;
  const owners = placement.owners(charmId).filter((b) => !untrusted.has(b.name));
  const get = (backend: (typeof owners)[number]) =>
    // GET for HEAD too: a HEAD answer carries no size to compare (the server sends none above 2 KB).
    callBackend(services, backend, {
      method: 'GET',
      pathAndQuery: `/v1/fs${path}`,
      headers: userAuthorization(request),
    });
  const kept = new Map<string, { response: IncomingMessage; body?: Buffer; size?: number }>();
  const answers = await Promise.all(
    owners.map(async (backend): Promise<OwnerAnswer> => {
      let response: IncomingMessage;
      try {
        response = await get(backend);
      } catch (err) {
        return { backend: backend.name, kind: 'unreachable', reason: (err as Error).message };
      }
      const status = response.statusCode ?? 0;
      try {
        if (status === 200 && !isListing(response)) {
          const file = await hashBody(response, AGREEMENT_KEEP_BYTES);
          kept.set(backend.name, { response, body: file.body, size: file.size });
          return {
            backend: backend.name,
            kind: 'answer',
            status,
            fingerprint: fileFingerprint(file.size, file.sha256),
          };
        }
        const body = await readSmallBody(response);
        kept.set(backend.name, { response, body });
        const fingerprint = status === 200 ? listingFingerprint(body) : bodyFingerprint(body);
        return { backend: backend.name, kind: 'answer', status, fingerprint };
      } catch (err) {
        response.destroy();
        return {
          backend: backend.name,
          kind: 'unreachable',
          reason: `its answer broke: ${(err as Error).message}`,
        };
      }
    }),
  );
  const failures = answers.flatMap((a) =>
    a.kind === 'unreachable' ? [{ backend: a.backend, reason: a.reason }] : [],
  );
  const agreement = agreedAnswer(answers, readQuorum);
  if (agreement.kind === 'none-answered') {
    if (services.backupStore) {
      request.log.warn({ charmId, failures }, 'no owner reachable: reading from the S3 backup');
      return readFromBackup(services, request, reply, charmId, path, failures, false);
    }
    throw new NoBackendError('this read', failures);
  }
  if (agreement.kind === 'refused') {
    throw new NoBackendError('this read while the manifest (Redis) is unreachable; retry once it is back', [
      ...failures,
      { backend: 'owners', reason: agreement.reason },
    ]);
  }
  const chosen = kept.get(agreement.backend) as { response: IncomingMessage; body?: Buffer; size?: number };
  const isFile = chosen.size !== undefined;
  if (!isFile || chosen.body) {
    reply.hijack();
    if (isFile) relayWhole(chosen.response, reply.raw, chosen.body as Buffer);
    else await relayResponse(chosen.response, reply.raw, chosen.body);
    services.metrics.bytesOut.inc(chosen.body?.length ?? 0);
    return;
  }
  // Agreed on a large file: read again from that owner (before the reply is taken over, so a failure is still a
  // clear 503), its size checked as it passes. Nothing can change it while Redis is away: writes and repair jobs
  // need it.
  let again: IncomingMessage;
  try {
    again = await get(placement.byName(agreement.backend) as (typeof owners)[number]);
  } catch (err) {
    throw new NoBackendError('this read while the manifest (Redis) is unreachable', [
      ...failures,
      { backend: agreement.backend, reason: (err as Error).message },
    ]);
  }
  if (again.statusCode !== 200) {
    again.destroy();
    throw new NoBackendError('this read while the manifest (Redis) is unreachable', [
      ...failures,
      { backend: agreement.backend, reason: `answered ${again.statusCode} when read again` },
    ]);
  }
  reply.hijack();
  services.metrics.bytesOut.inc(await relaySized(again, reply.raw, chosen.size as number));
}

/** A body's size and sha256, streamed; the bytes themselves only when they are at most `keepBytes`. */
async function hashBody(
  response: IncomingMessage,
  keepBytes: number,
): Promise<{ size: number; sha256: string; body?: Buffer }> {
  const hash = createHash('sha256');
  let chunks: Buffer[] | undefined = [];
  let size = 0;
  for await (const chunk of response) {
    const bytes = chunk as Buffer;
    hash.update(bytes);
    size += bytes.length;
    if (chunks && size <= keepBytes) chunks.push(bytes);
    else chunks = undefined;
  }
  return { size, sha256: hash.digest('hex'), body: chunks ? Buffer.concat(chunks) : undefined };
}
