import type { Backend } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import { type BackendProxy, BackendUnreachableError } from './backend-proxy.ts';

export interface HttpAppDeps {
  logger: Logger;
  proxy: BackendProxy;
  /** The backend that answers every route (the first configured one). */
  backend: Backend;
}

/** The Charm HTTP API as users see it. Listens nowhere: `main.ts` does. */
export function buildHttpApp({ logger, proxy, backend }: HttpAppDeps): FastifyInstance {
  const app = Fastify({
    loggerInstance: logger.child({ component: 'http' }) as FastifyBaseLogger,
    disableRequestLogging: true,
    // Bodies are streamed to backends untouched, never parsed here.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false },
  });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));

  app.all('/*', async (request, reply) => {
    reply.hijack();
    try {
      await proxy.forward(request.raw, reply.raw, backend, request.raw.url ?? '/');
    } catch (err) {
      request.log.warn({ err, backend: backend.name }, 'proxying failed');
      if (!reply.raw.headersSent) {
        const message =
          err instanceof BackendUnreachableError
            ? `${err.message}: check that the charm server is running`
            : 'the gateway could not relay this request';
        reply.raw.writeHead(502, { 'content-type': 'application/json' });
        reply.raw.end(`${JSON.stringify({ message })}\n`);
      } else {
        reply.raw.destroy();
      }
    }
  });
  return app;
}
