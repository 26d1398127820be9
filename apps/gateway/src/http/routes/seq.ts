import type { Backend } from '@cring/charm';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { BadRequestError, NoQuorumError } from '../../errors.ts';
import { callBackendExpectOk, userAuthorization } from '../backend-calls.ts';
import { lockPath } from '../path-lock.ts';
import type { GatewayServices } from '../services.ts';

// A laggard is brought up one POST at a time; past this gap something is wrong and it is left to the job.
const MAX_CATCH_UP_STEPS = 1000;

/** The counter's name from its escaped form; a malformed `%` escape is the client's 400, as on the server. */
function seqName(rawName: string): string {
  try {
    return decodeURIComponent(rawName);
  } catch {
    throw new BadRequestError(`the seq name "${rawName.slice(0, 100)}" has a malformed %-escape`);
  }
}

function parseSeq(body: Buffer): number {
  const seq = (JSON.parse(body.toString('utf8')) as { seq?: unknown }).seq;
  if (typeof seq !== 'number' || !Number.isInteger(seq)) throw new Error('answer has no integer seq');
  return seq;
}

/**
 * /v1/seq/:name: kv uses these counters to name its backups, so a value must never be handed out twice. Every
 * backend is read (GET creates the row at 0, as the server does), the answer is the maximum of the backends and of
 * the highest value the manifest ever handed out (+1 for POST), and laggards are brought up to it with extra POSTs
 * (a counter can only go up). Backends that cannot be reached get a catch-up job.
 */
export function registerSeqRoutes(app: FastifyInstance, services: GatewayServices): void {
  const { manifest, placement, queues } = services;

  const handler = async (request: FastifyRequest, increment: boolean) => {
    const { charmId } = request;
    const rawName = (request.raw.url ?? '').slice('/v1/seq/'.length).split('?')[0] as string;
    const name = seqName(rawName);
    request.raw.resume();
    const call = (backend: Backend, method: 'GET' | 'POST') =>
      callBackendExpectOk(services, backend, {
        method,
        pathAndQuery: `/v1/seq/${rawName}`,
        headers: ['Content-Type', 'application/json', ...userAuthorization(request)],
        body: Buffer.from('null'),
      }).then(parseSeq);

    const lock = await lockPath(services, charmId, `seq:${name}`);
    try {
      const backends = placement.accountCandidates();
      const read = await Promise.allSettled(backends.map((b) => call(b, 'GET')));
      const values = new Map<string, number>();
      const failures: { backend: string; reason: string }[] = [];
      read.forEach((result, i) => {
        const backend = (backends[i] as Backend).name;
        if (result.status === 'fulfilled') values.set(backend, result.value);
        else failures.push({ backend, reason: (result.reason as Error).message });
      });
      const quorum = Math.min(services.config.writeQuorum, backends.length);
      if (values.size < quorum) throw new NoQuorumError(quorum, values.size, failures);

      let target = Math.max(...values.values(), await manifest.seqFloor(charmId, name));
      if (increment) target += 1;
      // Record the value before handing it out: a crash after this never reuses it.
      await manifest.raiseSeqFloor(charmId, name, target);

      const finalValues = new Map<string, number>();
      await Promise.all(
        backends
          .filter((b) => values.has(b.name))
          .map(async (backend) => {
            let value = values.get(backend.name) as number;
            for (let step = 0; value < target && step < MAX_CATCH_UP_STEPS; step++)
              value = await call(backend, 'POST');
            finalValues.set(backend.name, value);
          })
          .map((p) => p.catch((err: Error) => request.log.warn({ err }, 'seq catch-up failed'))),
      );
      // A backend moved past the target outside the gateway: never hand out a value a backend has passed.
      const highest = Math.max(target, ...finalValues.values());
      if (highest > target) {
        target = highest;
        await manifest.raiseSeqFloor(charmId, name, target);
      }
      const reached = [...finalValues].filter(([, value]) => value >= target).map(([backend]) => backend);
      if (reached.length < quorum) {
        throw new NoQuorumError(quorum, reached.length, failures);
      }
      for (const backend of backends) {
        if (!reached.includes(backend.name)) {
          await queues
            .enqueueForBackend(backend.name, { kind: 'seq', charmId, name, atLeast: target })
            .catch((err) => request.log.warn({ err }, 'could not enqueue a seq catch-up'));
        }
      }
      return target;
    } finally {
      await lock.release().catch(() => {});
    }
  };

  const send = (reply: import('fastify').FastifyReply, seq: number) =>
    // A Buffer, so the Content-Type stays exactly application/json (the charm client compares it).
    reply
      .code(200)
      .header('content-type', 'application/json')
      .send(Buffer.from(`${JSON.stringify({ seq })}\n`));

  app.route({
    method: ['GET', 'HEAD'],
    url: '/v1/seq/:name',
    handler: async (request, reply) => send(reply, await handler(request, false)),
  });
  app.post('/v1/seq/:name', async (request, reply) => send(reply, await handler(request, true)));
}
