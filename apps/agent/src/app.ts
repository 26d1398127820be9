import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, mkdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  ApplyRefusedError,
  accountsDbPath,
  type BackendDb,
  BackendInitError,
  BackendUnavailableError,
  localBackendAccounts,
  prepareBackend,
  restoreAccountsDb,
  snapshotAccountsDb,
} from '@cring/accounts';
import {
  type DiskSpace,
  decodeApplyPlan,
  decodeModTimeRequest,
  decodeModTimesRequest,
  encodeApplyResult,
  encodeSnapshot,
  type ModTimeResult,
  PayloadError,
  SHA256_HEADER,
} from '@cring/agent-protocol';
import { bearerToken, JwtError } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Registry } from 'prom-client';
import { NotThatFileError, setModTime } from './mod-time.ts';

export interface AgentServices {
  backend: BackendDb;
  /** Throws JwtError unless the token is a live agent token for this backend; returns its id and expiry. */
  verify: (token: string) => { id: string; expiresAt: number };
  /** The cluster key file: what `init` installs into a new backend's data dir. */
  serverKeyFile: string;
  maxDbBytes: number;
  logger: Logger;
  /** Serve HTTPS with this certificate. */
  tls?: { cert: Buffer; key: Buffer };
  /** Free space on the backend's data volume (and whether it is under the reserve). */
  diskSpace: () => Promise<DiskSpace>;
  /** Served on GET /metrics without a token, like every process's metrics (they hold no user data). */
  metrics?: Registry;
}

class AgentHttpError extends Error {
  readonly statusCode: number;
  readonly code: string;
  constructor(statusCode: number, code: string, message: string) {
    super(message);
    this.statusCode = statusCode;
    this.code = code;
  }
}

/** Every error to the wire, in one place: status, stable code, message (internals hidden for 5xx). */
function wireError(err: unknown): { status: number; code: string; message: string } {
  if (err instanceof AgentHttpError) return { status: err.statusCode, code: err.code, message: err.message };
  if (err instanceof JwtError)
    return { status: 401, code: `TOKEN_${err.reason.toUpperCase()}`, message: err.message };
  if (err instanceof PayloadError) return { status: 400, code: err.code, message: err.message };
  if (err instanceof BackendUnavailableError) return { status: 503, code: err.code, message: err.message };
  if (err instanceof BackendInitError) return { status: 409, code: err.code, message: err.message };
  if (err instanceof ApplyRefusedError) return { status: 409, code: err.code, message: err.message };
  if (err instanceof NotThatFileError) return { status: 409, code: err.code, message: err.message };
  const status = (err as { statusCode?: number }).statusCode;
  if (status && status >= 400 && status < 500) {
    return {
      status,
      code: (err as { code?: string }).code ?? 'BAD_REQUEST',
      message: (err as Error).message,
    };
  }
  return { status: 500, code: 'INTERNAL', message: 'internal error' };
}

/** The agent's HTTP API (listens nowhere: main.ts does). */
export function buildAgentApp(services: AgentServices): FastifyInstance {
  const { backend, logger } = services;
  const accounts = localBackendAccounts(backend);
  const app = Fastify({
    ...(services.tls ? { https: services.tls } : {}),
    loggerInstance: logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // Apply plans carry the in-scope users' rows: generous, still bounded.
    bodyLimit: 256 * 1024 * 1024,
  });
  // DB uploads are streamed to a file by their route, never buffered.
  app.addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null));

  // Token ids seen and when they expire: a token is good for one request (a captured one cannot be replayed).
  const seen = new Map<string, number>();
  app.addHook('onRequest', async (request) => {
    if (request.url === '/healthz' || request.url === '/metrics') return;
    const { id, expiresAt } = services.verify(bearerToken(request.headers.authorization));
    const nowSeconds = Date.now() / 1000;
    if (seen.size > 10_000) for (const [old, exp] of seen) if (exp <= nowSeconds) seen.delete(old);
    if (seen.has(id)) throw new AgentHttpError(401, 'TOKEN_REPLAYED', 'this agent token was already used');
    seen.set(id, expiresAt);
  });

  app.setErrorHandler((err, request, reply) => {
    const { status, code, message } = wireError(err);
    if (status >= 500) request.log.error({ err, url: request.routeOptions.url }, 'request failed');
    else request.log.info({ code, status, url: request.routeOptions.url }, 'request refused');
    if (reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    void reply.code(status).send({ code, message });
  });

  app.get('/healthz', async () => ({ ok: true }));

  const registry = services.metrics;
  if (registry) {
    app.get('/metrics', async (_request, reply) =>
      reply.header('content-type', registry.contentType).send(await registry.metrics()),
    );
  }

  app.get('/v1/accounts', async () => encodeSnapshot(await accounts.read()));

  app.post('/v1/accounts/apply', async (request) => {
    const plan = decodeApplyPlan(request.body);
    if (plan.backend !== backend.name) {
      throw new AgentHttpError(
        400,
        'WRONG_BACKEND',
        `this agent runs beside ${backend.name}, not ${plan.backend}`,
      );
    }
    return encodeApplyResult(await accounts.apply(plan));
  });

  app.get('/v1/users', async () => ({ charmIds: await accounts.charmIds() }));

  app.get<{ Params: { charmId: string } }>('/v1/users/:charmId', async (request) => ({
    known: await accounts.knowsUser(request.params.charmId),
  }));

  app.get('/v1/accounts-db', async (_request, reply) => {
    const file = join(tmpdir(), `cring-agent-${backend.name}-${randomBytes(6).toString('hex')}.db`);
    try {
      snapshotAccountsDb(backend, file);
      const hash = createHash('sha256');
      await pipeline(createReadStream(file), hash);
      const stream = createReadStream(file);
      stream.once('close', () => rmSync(file, { force: true }));
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', statSync(file).size)
        .header(SHA256_HEADER, hash.digest('hex'))
        .send(stream);
    } catch (err) {
      rmSync(file, { force: true });
      throw err;
    }
  });

  app.put<{ Querystring: { mode?: string; force?: string } }>('/v1/accounts-db', async (request, reply) => {
    const { mode, force } = request.query;
    if (mode !== 'init' && mode !== 'restore') {
      throw new AgentHttpError(
        400,
        'BAD_MODE',
        'mode must be "init" (a new backend) or "restore" (a backup)',
      );
    }
    if (force !== undefined && force !== 'true' && force !== 'false') {
      throw new AgentHttpError(400, 'BAD_FORCE', 'force must be "true" or "false"');
    }
    const expected = request.headers[SHA256_HEADER];
    if (typeof expected !== 'string' || !/^[0-9a-f]{64}$/.test(expected)) {
      throw new AgentHttpError(400, 'NO_SHA256', `send the file's sha256 (hex) in ${SHA256_HEADER}`);
    }
    // Beside the DB, so the final rename stays on one filesystem.
    const upload = join(dirname(accountsDbPath(backend)), `.upload-${randomBytes(6).toString('hex')}`);
    mkdirSync(dirname(upload), { recursive: true, mode: 0o700 });
    try {
      const hash = createHash('sha256');
      let bytes = 0;
      const tooLarge = () =>
        new AgentHttpError(
          413,
          'TOO_LARGE',
          `an account DB upload is capped at ${services.maxDbBytes} bytes; nothing replaced`,
        );
      // The bytes past the cap are read and dropped, so the sender hears the 413: a body left unread stalled the
      // connection until the keep-alive timeout, and a sender still writing missed the answer now and then. Past
      // twice the cap the connection is closed once the answer is out: nobody is owed an endless body's reading.
      const { socket } = request.raw;
      const counter = new Transform({
        transform(chunk: Buffer, _encoding, done) {
          bytes += chunk.length;
          if (bytes > 2 * services.maxDbBytes) {
            reply.header('connection', 'close');
            reply.raw.once('finish', () => socket.destroy());
            return done(tooLarge());
          }
          if (bytes > services.maxDbBytes) return done();
          hash.update(chunk);
          done(null, chunk);
        },
      });
      await pipeline(request.raw, counter, createWriteStream(upload, { mode: 0o644 }));
      if (bytes > services.maxDbBytes) throw tooLarge();
      const sha256 = hash.digest('hex');
      if (sha256 !== expected) {
        throw new AgentHttpError(
          400,
          'DAMAGED',
          `the upload's sha256 is ${sha256}, not ${expected}: nothing replaced`,
        );
      }
      if (mode === 'init')
        prepareBackend({ target: backend, snapshotFile: upload, serverKeyFile: services.serverKeyFile });
      else restoreAccountsDb({ target: backend, dbFile: upload, force: force === 'true' });
      logger.info({ mode, bytes }, 'account DB replaced');
      return reply.code(204).send();
    } finally {
      rmSync(upload, { force: true });
    }
  });

  app.get('/v1/disk', () => services.diskSpace());

  // Several files per call: a replicator sends the copies its jobs made meanwhile at once. A file that is not the
  // copy named is refused on its own (its result says why); the others are still set.
  app.post('/v1/files/mtimes', async (request) => {
    const results: ModTimeResult[] = decodeModTimesRequest(request.body).map((file) => {
      try {
        setModTime(backend.dataDir, file);
        return { set: true };
      } catch (err) {
        if (err instanceof NotThatFileError) return { code: err.code, message: err.message };
        throw err;
      }
    });
    return { results };
  });

  // One file per call, as replicators before the several-files call sent it: kept so agents can be upgraded
  // before the replicator (a refusal is a 409 with the agent's reason).
  app.post('/v1/files/mtime', async (request, reply) => {
    setModTime(backend.dataDir, decodeModTimeRequest(request.body));
    return reply.code(204).send();
  });

  return app;
}
