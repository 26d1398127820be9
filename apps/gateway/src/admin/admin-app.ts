import crypto from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import type { Logger } from '@cring/service-runtime';
import type { Queue } from 'bullmq';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Registry } from 'prom-client';

export interface AdminAppDeps {
  logger: Logger;
  queues: () => Queue[];
  /** Without credentials the admin port must be bound to loopback (config enforces it). */
  credentials?: { user: string; password: string };
  status: () => Promise<unknown>;
  metrics: Registry;
}

/** Compares digests, not the strings: the time taken says nothing about the secret, not even its length. */
export function sameSecret(given: string, expected: string): boolean {
  const digest = (value: string) => crypto.createHash('sha256').update(value, 'utf8').digest();
  return crypto.timingSafeEqual(digest(given), digest(expected));
}

/** The operators' port: Bull Board at /queues, cluster status at /status, liveness at /healthz. */
export async function buildAdminApp(deps: AdminAppDeps): Promise<FastifyInstance> {
  const app = Fastify({
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
  const board = new FastifyAdapter();
  board.setBasePath('/queues');
  createBullBoard({ queues: deps.queues().map((queue) => new BullMQAdapter(queue)), serverAdapter: board });
  await app.register(board.registerPlugin(), { prefix: '/queues' });
  app.get('/', async (_request, reply) => reply.redirect('/queues'));
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/status', async () => deps.status());
  app.get('/metrics', async (_request, reply) =>
    reply.header('content-type', deps.metrics.contentType).send(await deps.metrics.metrics()),
  );
  return app;
}
