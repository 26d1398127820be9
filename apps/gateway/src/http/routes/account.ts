import type { Backend } from '@cring/charm';
import type { FastifyInstance } from 'fastify';
import { readSmallBody, relayResponse } from '../../backends/backend-http.ts';
import { originFormTarget } from '../../backends/backend-url.ts';
import { BadRequestError, NoBackendError, NoQuorumError, PayloadTooLargeError } from '../../errors.ts';
import { nextBodyChunk } from '../../spool/upload-spool.ts';
import { callBackend, callBackendExpectOk, userAuthorization } from '../backend-calls.ts';
import type { GatewayServices } from '../services.ts';

const ACCOUNT_BODY_LIMIT_BYTES = 1024 * 1024; // the server's limit outside /v1/fs

async function readJsonBody(
  request: import('fastify').FastifyRequest,
  stallTimeoutMs: number,
): Promise<Record<string, unknown>> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > ACCOUNT_BODY_LIMIT_BYTES) throw new PayloadTooLargeError(ACCOUNT_BODY_LIMIT_BYTES);
  const chunks: Buffer[] = [];
  let size = 0;
  const body = request.raw.iterator({ destroyOnReturn: false });
  for (;;) {
    // A body that stops arriving fails like a stalled upload (408), instead of waiting for the idle timeout.
    const next = await nextBodyChunk(body, stallTimeoutMs, size);
    if (next.done) break;
    const chunk = next.value as Buffer;
    size += chunk.length;
    if (size > ACCOUNT_BODY_LIMIT_BYTES) throw new PayloadTooLargeError(ACCOUNT_BODY_LIMIT_BYTES);
    chunks.push(chunk);
  }
  try {
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (!value || typeof value !== 'object' || Array.isArray(value)) throw new Error('not an object');
    return value as Record<string, unknown>;
  } catch {
    throw new BadRequestError('the body must be a JSON object');
  }
}

/**
 * Account state lives in every backend's own SQLite and must agree everywhere, or a failover forks the user.
 * POST /v1/encrypt-key goes to every backend with one created_at; POST /v1/bio goes to the account primary first
 * and is undone there if another backend refuses the name.
 */
export function registerAccountRoutes(app: FastifyInstance, services: GatewayServices): void {
  const { manifest, placement, queues } = services;

  app.post('/v1/encrypt-key', async (request, reply) => {
    const { charmId } = request;
    const body = await readJsonBody(request, services.config.spool.stallTimeoutMs);
    const id = body.id;
    if (typeof id !== 'string' || typeof body.key !== 'string' || typeof body.public_key !== 'string') {
      throw new BadRequestError('an encrypt key needs string fields id, key and public_key');
    }
    // The client sends created_at null for a new key; each backend would stamp its own time and could then order
    // the user's keys differently (keys[0] names every path). One time, the first one stamped, for all.
    const createdAt =
      typeof body.created_at === 'string'
        ? body.created_at
        : await manifest
            .stampEncryptKey(charmId, id, new Date().toISOString())
            .catch(() => new Date().toISOString());
    const encryptKey = { id, key: body.key, public_key: body.public_key, created_at: createdAt };
    // The key may belong to a device linked a moment ago on the account primary: get it everywhere first.
    await services.accountPresence.refresh(charmId);
    const payload = Buffer.from(JSON.stringify({ ...body, created_at: createdAt }));
    const backends = placement.all();
    const results = await Promise.allSettled(
      backends.map((backend) =>
        callBackendExpectOk(services, backend, {
          method: 'POST',
          pathAndQuery: '/v1/encrypt-key',
          headers: [
            'Content-Type',
            'application/json',
            'Content-Length',
            String(payload.length),
            ...userAuthorization(request),
          ],
          body: payload,
        }),
      ),
    );
    const failed = backends.filter((_, i) => results[i]?.status === 'rejected');
    const failures = failed.map((b) => ({
      backend: b.name,
      reason: ((results[backends.indexOf(b)] as PromiseRejectedResult).reason as Error).message,
    }));
    const succeeded = backends.length - failed.length;
    if (succeeded > 0) {
      for (const backend of failed) {
        await queues
          .enqueueForBackend(backend.name, { kind: 'encrypt-key', charmId, encryptKey })
          .catch((err) => request.log.warn({ err }, 'could not enqueue an encrypt-key catch-up'));
      }
    }
    const quorum = Math.min(services.config.writeQuorum, backends.length);
    if (succeeded < quorum) throw new NoQuorumError(quorum, succeeded, failures);
    if (failures.length > 0) request.log.warn({ charmId, failures }, 'encrypt key not on every backend yet');
    // Record the key in the synced account state (and its S3 backup) now, not at the next scheduled round:
    // read-only answers while every backend is down hand out encrypt keys from there.
    await services.accountPresence.refresh(charmId);
    return reply.code(200).send();
  });

  app.post('/v1/bio', async (request, reply) => {
    const body = await readJsonBody(request, services.config.spool.stallTimeoutMs);
    const payload = Buffer.from(JSON.stringify(body));
    const post = (backend: Backend, bytes: Buffer) =>
      callBackend(services, backend, {
        method: 'POST',
        pathAndQuery: '/v1/bio',
        headers: [
          'Content-Type',
          'application/json',
          'Content-Length',
          String(bytes.length),
          ...userAuthorization(request),
        ],
        body: bytes,
      });
    const [primary, ...others] = placement.accountCandidates() as [Backend, ...Backend[]];
    // The name before the change, to undo it if another backend refuses the new one.
    const before = JSON.parse(
      (
        await callBackendExpectOk(services, primary, {
          method: 'GET',
          pathAndQuery: '/v1/id/self',
          headers: userAuthorization(request),
        })
      ).toString('utf8'),
    ) as { name?: string | null };
    const primaryAnswer = await post(primary, payload);
    const primaryBody = await readSmallBody(primaryAnswer);
    if (primaryAnswer.statusCode !== 200) {
      reply.hijack();
      await relayResponse(primaryAnswer, reply.raw, primaryBody);
      return;
    }
    const results = await Promise.allSettled(
      others.map((b) => post(b, payload).then(async (r) => ({ r, body: await readSmallBody(r) }))),
    );
    const conflict = results.find((r) => r.status === 'fulfilled' && r.value.r.statusCode === 409);
    if (conflict && conflict.status === 'fulfilled') {
      const undo = Buffer.from(JSON.stringify({ ...body, name: before.name ?? '' }));
      const changed = [
        primary,
        ...others.filter(
          (_, i) =>
            results[i]?.status === 'fulfilled' &&
            (results[i] as PromiseFulfilledResult<{ r: { statusCode?: number } }>).value.r.statusCode === 200,
        ),
      ];
      await Promise.allSettled(changed.map((b) => post(b, undo).then(readSmallBody)));
      request.log.warn({ charmId: request.charmId }, 'name refused by one backend; undone on the others');
      reply.hijack();
      await relayResponse(conflict.value.r, reply.raw, conflict.value.body);
      return;
    }
    const unreachable = others.filter(
      (_, i) =>
        results[i]?.status === 'rejected' ||
        (results[i] as PromiseFulfilledResult<{ r: { statusCode?: number } }>).value.r.statusCode !== 200,
    );
    if (unreachable.length > 0) {
      request.log.warn(
        { charmId: request.charmId, backends: unreachable.map((b) => b.name) },
        'name not set on every backend; account sync brings it',
      );
    }
    reply.hijack();
    await relayResponse(primaryAnswer, reply.raw, primaryBody);
  });

  // Read-only account routes: the account primary answers, the next backend if it cannot.
  for (const url of ['/v1/id/:id', '/v1/bio/:name', '/v1/news', '/v1/news/:id']) {
    app.route({
      method: ['GET', 'HEAD'],
      url,
      handler: async (request, reply) => {
        request.raw.resume();
        await relayFromFirstAnswering(services, request, reply, placement.accountCandidates());
      },
    });
  }
}

/** Relays the first answer below 500 from candidates in order; transport errors and 5xx move on. */
export async function relayFromFirstAnswering(
  services: GatewayServices,
  request: import('fastify').FastifyRequest,
  reply: import('fastify').FastifyReply,
  candidates: readonly Backend[],
): Promise<void> {
  const failures: { backend: string; reason: string }[] = [];
  for (const backend of candidates) {
    let response: import('node:http').IncomingMessage;
    try {
      response = await callBackend(services, backend, {
        method: request.method,
        pathAndQuery: originFormTarget(request.raw.url),
        headers: userAuthorization(request),
      });
    } catch (err) {
      failures.push({ backend: backend.name, reason: (err as Error).message });
      continue;
    }
    if ((response.statusCode ?? 500) >= 500) {
      response.resume();
      failures.push({ backend: backend.name, reason: `answered ${response.statusCode}` });
      continue;
    }
    reply.hijack();
    await relayResponse(response, reply.raw);
    return;
  }
  throw new NoBackendError(request.raw.url ?? 'this request', failures);
}
