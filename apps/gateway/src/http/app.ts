import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  LogController,
} from 'fastify';
import { BackendTransportError } from '../backends/backend-http.ts';
import { originFormTarget } from '../backends/backend-url.ts';
import { BackendAnswerError, GatewayError, NoBackendError } from '../errors.ts';
import { applyConnectionLimits, refuseConnect, serverTimeoutOptions } from './edge-limits.ts';
import { escapeRawRequestTargets } from './raw-request-line.ts';
import { registerAccountRoutes } from './routes/account.ts';
import { registerFsReadRoutes } from './routes/fs-read.ts';
import { registerFsWriteRoutes } from './routes/fs-write.ts';
import { registerPassThroughRoutes } from './routes/pass-through.ts';
import { registerSeqRoutes } from './routes/seq.ts';
import type { GatewayServices } from './services.ts';
import { assertChunkedOnly } from './transfer-coding.ts';
import { withoutSchemas } from './without-schemas.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified JWT subject; set for every non-public route before its handler runs. */
    charmId: string;
  }
}

const PUBLIC_PREFIXES = ['/v1/public/', '/.well-known/'];

/** The Charm HTTP API as users see it, built from its services. Listens nowhere: main.ts does. */
export function buildHttpApp(
  services: GatewayServices,
  tls?: { cert: Buffer; key: Buffer },
): FastifyInstance {
  const { limits } = services.config;
  let clientError: ReturnType<typeof applyConnectionLimits>['clientError'] = () => {};
  const app = Fastify({
    ...withoutSchemas,
    ...(tls
      ? { https: { ...tls, ...serverTimeoutOptions(limits) } }
      : { http: serverTimeoutOptions(limits) }),
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    clientErrorHandler: (err, socket) => clientError(err, socket),
    loggerInstance: services.logger.child({ component: 'http' }) as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    exposeHeadRoutes: false,
    // Bodies are streamed or spooled by the routes themselves, never parsed by fastify.
    bodyLimit: Number.MAX_SAFE_INTEGER,
    routerOptions: { ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, maxParamLength: 2048 },
  });
  escapeRawRequestTargets(app.server, { tls: Boolean(tls), timeoutMs: limits.headersTimeoutMs });
  ({ clientError } = applyConnectionLimits(app.server, limits, services.metrics, { tls: Boolean(tls) }));
  refuseConnect(app.server, services.metrics);
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, _payload, done) => done(null));
  app.decorateRequest('charmId', '');

  // One hook for every request (each hook is a step of Fastify's hook runner and a promise): metrics, the edge's
  // checks, then the token.
  app.addHook('onRequest', async (request, reply) => {
    const started = process.hrtime.bigint();
    // 'finish' also fires for hijacked replies, which stream backend answers straight to the socket.
    reply.raw.once('finish', () => {
      const route = request.routeOptions.url ?? 'unmatched';
      services.metrics.requests.inc({ route, method: request.method, status: reply.raw.statusCode });
      services.metrics.requestSeconds.observe(
        { route, method: request.method },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    });

    // Only paths are routed and forwarded: an absolute URL or "//host" as the target would name another host.
    // Only bodies Node decodes whole are taken: chunked alone, or Content-Length.
    originFormTarget(request.raw.url);
    assertChunkedOnly(request.raw.rawHeaders);

    // Every route but the public ones needs a valid token before anything is read or written.
    const path = request.raw.url ?? '/';
    if (PUBLIC_PREFIXES.some((prefix) => path.startsWith(prefix))) return;
    request.charmId = services.verifier.verify(request.headers.authorization).charmId;
    await services.accountPresence.ensure(request.charmId);
  });

  app.setErrorHandler((thrown: FastifyError | GatewayError | BackendTransportError, request, reply) => {
    // A backend the route needed gave no answer at all (refused, reset, silent past its timeout): a 503 that names
    // it, not an internal error.
    const err =
      thrown instanceof BackendTransportError
        ? new NoBackendError(request.raw.url ?? 'this request', [
            { backend: thrown.backend, reason: thrown.message },
          ])
        : thrown;
    const known = err instanceof GatewayError;
    const status = known ? err.statusCode : (err.statusCode ?? 500);
    if (status >= 500) request.log.error({ err, url: request.routeOptions.url }, 'request failed');
    else
      request.log.info(
        { code: known ? err.code : err.code, status, url: request.routeOptions.url },
        'request refused',
      );
    // The charm client prints `message`; show ours for known errors and for 4xx, hide internals otherwise.
    const message = known || status < 500 ? err.message : 'internal error';
    if (reply.raw.headersSent) {
      reply.raw.destroy();
      return;
    }
    if (known && err.limit) services.metrics.limitTrips.inc({ limit: err.limit });
    if (known && err.retryAfterSeconds !== undefined)
      reply.header('retry-after', String(err.retryAfterSeconds));
    if (known && err.closeConnection) reply.header('connection', 'close');
    if (err instanceof BackendAnswerError) {
      void reply.code(status).header('content-type', err.contentType).send(err.body);
      return;
    }
    void reply
      .code(status)
      .header('content-type', 'application/json')
      .send(Buffer.from(`${JSON.stringify({ message })}\n`)); // a Buffer: fastify would add "; charset" to a string
  });

  registerFsWriteRoutes(app, services);
  registerFsReadRoutes(app, services);
  registerSeqRoutes(app, services);
  registerAccountRoutes(app, services);
  registerPassThroughRoutes(app, services);
  return app;
}
