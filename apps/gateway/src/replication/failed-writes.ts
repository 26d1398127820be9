import { createBackendClient } from '@cring/charm';
import { type PathLock, rollBackIntent, type WriteIntent } from '@cring/manifest';
import type { FastifyRequest } from 'fastify';
import { BackendAnswerError, NOTHING_CHANGED } from '../errors.ts';
import { BackendRefusedError } from '../http/backend-calls.ts';
import type { GatewayServices } from '../http/services.ts';

/**
 * The backends' own answer to a change none of them accepted, when at least `needed` of them gave the same one
 * and none was unreachable: a deterministic refusal (a file over a directory, a name too long, a quota) that
 * retrying elsewhere cannot change. Undefined when the failure is an outage (then the answer is a 503).
 */
export function sharedRefusal(
  failures: readonly { error?: unknown }[],
  needed: number,
): BackendAnswerError | undefined {
  const refusals = failures.map((f) => f.error).filter((e) => e instanceof BackendRefusedError);
  if (refusals.length < needed || refusals.length !== failures.length) return undefined;
  const first = refusals[0] as BackendRefusedError;
  if (!refusals.every((r) => r.status === first.status)) return undefined;
  return new BackendAnswerError(first.status, first.body, first.contentType);
}

/**
 * Rolls a write that was not acknowledged back to the last acknowledged state on the backends it touched (see
 * `rollBackIntent` for the rules), on the user's behalf, and says in words what became of them for the answer.
 * What cannot be undone now stays an open intent: reads avoid those backends and the healer finishes the job.
 */
export async function rollBackFailedWrite(
  services: GatewayServices,
  request: FastifyRequest,
  lock: PathLock,
  opened: WriteIntent,
  failures: readonly { backend: string; error?: unknown }[],
): Promise<string> {
  const { charmId } = request;
  const authorization = request.headers.authorization;
  // A refused connection carried no byte: nothing to undo there.
  const unreached = failures
    .filter((f) => (f.error as { cause?: NodeJS.ErrnoException })?.cause?.code === 'ECONNREFUSED')
    .map((f) => f.backend);
  // Reads stop trusting the touched backends at once, before the first byte is restored.
  const stored = await services.manifest.failIntent(charmId, lock, unreached).catch(() => undefined);
  const touched = opened.touched.filter((backend) => !unreached.includes(backend));
  // The intent (and lock) went with Redis's lost tail: the refusal goes back on record, or the healer's row L1
  // would adopt the bytes on the touched backends (its row I2 rolls this intent back instead). Redis not
  // answering, the record is retried in the background after the answer's short wait (refusal-records.ts).
  const intent = stored ??
    (await services.refusalRecords.record(charmId, opened, touched, lock, request.log)) ?? {
      ...opened,
      touched,
    };
  const clients = new Map(
    services.placement
      .all()
      .map((backend) => [backend.name, createBackendClient({ backend, userAuthorization: authorization })]),
  );
  try {
    const outcome = await rollBackIntent(charmId, intent, (name) => clients.get(name), lock);
    const changed = [...outcome.restored, ...outcome.deleted];
    if (outcome.failed.length === 0) {
      await services.manifest.clearIntent(charmId, lock, intent.fence).catch((err) => {
        request.log.warn({ err, charmId }, 'rolled back, but could not clear the write intent');
      });
      if (changed.length === 0) return NOTHING_CHANGED;
      request.log.warn({ charmId, ...outcome }, 'failed write rolled back');
      return `it had reached ${changed.join(', ')}, which ${changed.length === 1 ? 'was' : 'were'} rolled back to the last acknowledged state: ${NOTHING_CHANGED}`;
    }
    request.log.error({ charmId, ...outcome }, 'failed write not fully rolled back; left to the healer');
    services.unresolvedWrites.remember(
      charmId,
      intent.path,
      outcome.failed.map((f) => f.backend),
    );
    const reasons = outcome.failed.map((f) => `${f.backend}: ${f.reason}`).join('; ');
    return `it reached ${intent.touched.join(', ')} and rolling back ${outcome.failed.map((f) => f.backend).join(', ')} did not finish (${reasons}): reads keep serving the last acknowledged state and the healer completes the roll-back`;
  } finally {
    for (const client of clients.values()) client.close();
  }
}
