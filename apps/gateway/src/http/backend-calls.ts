import type { IncomingMessage } from 'node:http';
import type { Backend } from '@cring/charm';
import type { FastifyRequest } from 'fastify';
import { type BackendRequest, BackendTransportError, readSmallBody } from '../backends/backend-http.ts';
import type { BackendAnswer, SocketReadRequest, StreamedRequest } from '../backends/socket-reads.ts';
import type { GatewayServices } from './services.ts';

/** A backend answered, but not with 200. */
export class BackendRefusedError extends Error {
  readonly status: number;
  readonly body: Buffer;
  readonly contentType: string;
  constructor(backend: string, status: number, body: Buffer, contentType = 'application/json') {
    const message = (() => {
      try {
        return (
          (JSON.parse(body.toString('utf8')) as { message?: string }).message ?? body.toString('utf8').trim()
        );
      } catch {
        return body.toString('utf8').trim().slice(0, 200);
      }
    })();
    super(`answered ${status}${message ? ` "${message}"` : ''}`);
    this.name = 'BackendRefusedError';
    this.status = status;
    this.body = body;
    this.contentType = contentType;
    void backend;
  }
}

/** The charm server's 404 for a user it does not know: an account problem, never "file not found". */
export function isMissingUser(body: Buffer): boolean {
  return body.includes('missing user for id');
}

/** The user's own Authorization header: requests made on their behalf, never stored or logged. */
export function userAuthorization(request: FastifyRequest): string[] {
  const value = request.headers.authorization;
  return value ? ['Authorization', value] : [];
}

/** Sends one request to a backend on the user's behalf; transport errors are reported to the health monitor. */
export function callBackend(
  services: GatewayServices,
  backend: Backend,
  request: BackendRequest,
): Promise<IncomingMessage> {
  return measured(services, backend, request.method, () => services.backendHttp.request(backend, request));
}

/** A file's GET, HEAD or whole-body POST over the socket pool (socket-reads.ts), counted and reported like callBackend. */
export function readFromBackend(
  services: GatewayServices,
  backend: Backend,
  request: SocketReadRequest,
): Promise<BackendAnswer> {
  return measured(services, backend, request.method, () => services.socketReads.request(backend, request));
}

async function measured<T extends { statusCode?: number }>(
  services: GatewayServices,
  backend: Backend,
  method: string,
  send: () => Promise<T>,
): Promise<T> {
  const started = process.hrtime.bigint();
  try {
    const response = await send();
    services.metrics.backendRequests.inc({
      backend: backend.name,
      method,
      outcome: response.statusCode ?? 0,
    });
    services.metrics.backendSeconds.observe(
      { backend: backend.name, method },
      Number(process.hrtime.bigint() - started) / 1e9,
    );
    return response;
  } catch (err) {
    services.metrics.backendRequests.inc({ backend: backend.name, method, outcome: 'transport' });
    if (err instanceof BackendTransportError) services.reportBackendFailure(backend.name, err);
    throw err;
  }
}

/** Like callBackend, but only a 200 counts: anything else throws BackendRefusedError with the answer's body. */
export async function callBackendExpectOk(
  services: GatewayServices,
  backend: Backend,
  request: BackendRequest,
): Promise<Buffer> {
  const response = await callBackend(services, backend, request);
  return expectOk(backend, response, await readSmallBody(response));
}

/**
 * A file's POST whose body is one buffer, over the socket pool (head and body in one write, no ClientRequest);
 * only a 200 counts, as for callBackendExpectOk.
 */
export async function postWholeToBackend(
  services: GatewayServices,
  backend: Backend,
  request: { pathAndQuery: string; headers: string[]; body: Buffer; signal?: AbortSignal },
): Promise<Buffer> {
  const answer = await readFromBackend(services, backend, { method: 'POST', ...request });
  return expectOk(backend, answer, await answer.read());
}

/**
 * A file's POST whose body is written as it arrives (`body`), over the socket pool; `done` settles like
 * postWholeToBackend's answer.
 */
export function streamToBackend(
  services: GatewayServices,
  backend: Backend,
  request: { pathAndQuery: string; headers: string[]; signal?: AbortSignal },
): { body: StreamedRequest; done: Promise<Buffer> } {
  const { answer, body } = services.socketReads.stream(backend, { method: 'POST', ...request });
  const done = measured(services, backend, 'POST', () => answer).then(async (answered) =>
    expectOk(backend, answered, await answered.read()),
  );
  return { body, done };
}

function expectOk(
  backend: Backend,
  answer: { statusCode?: number; headers: Record<string, string | string[] | undefined> },
  body: Buffer,
): Buffer {
  if (answer.statusCode !== 200) {
    const type = answer.headers['content-type'];
    throw new BackendRefusedError(
      backend.name,
      answer.statusCode ?? 0,
      body,
      typeof type === 'string' ? type : 'application/json',
    );
  }
  return body;
}
