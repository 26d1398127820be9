import type { FastifyInstance } from 'fastify';
import type { GatewayServices } from '../services.ts';
import { relayFromFirstAnswering } from './account.ts';

/**
 * Public routes (JWKS, OpenID configuration) and anything the gateway does not know: relayed to the account
 * primary (or the next backend), so unknown paths get the server's own 404. Unknown routes still need a valid
 * token first, as on the server.
 */
export function registerPassThroughRoutes(app: FastifyInstance, services: GatewayServices): void {
  const relay = async (request: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => {
    request.raw.resume();
    await relayFromFirstAnswering(services, request, reply, services.placement.accountCandidates());
  };
  app.route({ method: ['GET', 'HEAD'], url: '/v1/public/*', handler: relay });
  app.route({ method: ['GET', 'HEAD'], url: '/.well-known/*', handler: relay });
  app.setNotFoundHandler(relay);
}
