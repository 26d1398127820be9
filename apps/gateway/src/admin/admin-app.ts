import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '@cring/service-runtime';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Registry } from 'prom-client';
import { withoutSchemas } from '../http/without-schemas.ts';

export interface AdminAppDeps {
  logger: Logger;
  queues: () => Queue[];
  /** Without credentials the admin port must be bound to loopback (config enforces it). */
  credentials?: { user: string; password: string };
  status: () => Promise<unknown>;
  metrics: Registry;
  /** Client connections of the HTTP port open longer than a time, as Node sees them (http/open-connections.ts). */
  openConnections: (olderThanMs: number) => unknown[];
}

/** Compares digests, not the strings: the time taken says nothing about the secret, not even its length. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => crypto.createHash('sha256').update(value, 'utf8').digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

/**
 * The operators' port: Bull Board at /queues, cluster status at /status, liveness at /healthz, metrics at /metrics,
 * long-open client connections at /connections.
 */
export async function buildAdminApp(deps: AdminAppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...withoutSchemas,
    loggerInstance: deps.logger.child({ component: 'admin' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  if (deps.credentials) {
    const { user, password } = deps.credentials;
    app.addHook('onRequest', async (request, reply) => {
      if (request.url === '/healthz') return;
      const header = request.headers.authorization ?? '';
      const [scheme, encoded] = header.split(' ');
      const [givenUser, ...rest] = Buffer.from(encoded ?? '', 'base64')
        .toString('utf8')
        .split(':');
      if (
        scheme?.toLowerCase() !== 'basic' ||
        !sameSecret(givenUser ?? '', user) ||
        !sameSecret(rest.join(':'), password)
      ) {
        return reply
          .code(401)
          .header('www-authenticate', 'Basic realm="Charmed Ring admin"')
          .send({ message: 'credentials required (CRING_ADMIN_USER / CRING_ADMIN_PASSWORD)' });
      }
    });
  }
  const board = lazyBoard(deps);
  app.addHook('onClose', () => board.close());
  // A hook, not a route: it runs before the body is read, so Bull Board's own routes receive their bodies.
  app.addHook('onRequest', async (request, reply) => {
    if (!isBoardUrl(request.url)) return;
    reply.hijack();
    await board.serve(request.raw, reply.raw).catch((err: Error) => {
      request.log.error({ err: err.message }, 'Bull Board could not be loaded');
      reply.raw
        .writeHead(503, { 'content-type': 'text/plain' })
        .end(`Bull Board could not be loaded: ${err.message}`);
    });
  });
  app.get('/', async (_request, reply) => reply.redirect('/queues'));
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/status', async () => deps.status());
  // ?olderThanMs=N: only connections open that long (default 5 s), to find one that is never closed.
  app.get('/connections', async (request) => {
    const olderThanMs = Number((request.query as { olderThanMs?: string }).olderThanMs ?? 5_000);
    return deps.openConnections(Number.isFinite(olderThanMs) && olderThanMs >= 0 ? olderThanMs : 5_000);
  });
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', deps.metrics.contentType).send(await deps.metrics.metrics()),
  );
  return app;
}

const BOARD_PREFIX = '/queues';

function isBoardUrl(url: string): boolean {
  return url === BOARD_PREFIX || url.startsWith(`${BOARD_PREFIX}/`) || url.startsWith(`${BOARD_PREFIX}?`);
}

/**
 * Bull Board (its UI server, lodash, ejs, static files: ~8 MiB of the gateway's RSS) is loaded on the first
 * /queues request, not at start: most gateways never serve it. Its own Fastify app answers those requests.
 */
function lazyBoard(deps: AdminAppDeps) {
  let board: Promise<FastifyInstance> | undefined;
  const build = async () => {
    const [{ createBullBoard }, { BullMQAdapter }, { FastifyAdapter }] = await Promise.all([
      import('@bull-board/api'),
      import('@bull-board/api/bullMQAdapter'),
      import('@bull-board/fastify'),
    ]);
    const app = Fastify({
      loggerInstance: deps.logger.child({ component: 'admin' }) as FastifyBaseLogger,
      logController: new LogController({ disableRequestLogging: true }),
    });
    const adapter = new FastifyAdapter();
    adapter.setBasePath(BOARD_PREFIX);
    createBullBoard({
      queues: deps.queues().map((queue) => new BullMQAdapter(queue)),
      serverAdapter: adapter,
    });
    await app.register(adapter.registerPlugin(), { prefix: BOARD_PREFIX });
    await app.ready();
    return app;
  };
  return {
    async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
      board ??= build().catch((err: unknown) => {
        board = undefined; // the next request tries again
        throw err;
      });
      (await board).routing(request, response);
    },
    async close(): Promise<void> {
      await (await board?.catch(() => undefined))?.close();
    },
  };
}
