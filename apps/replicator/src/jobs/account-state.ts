import { type BackendClient, mintCharmJwt } from '@cring/charm';
import type { EncryptKeyJob, SeqJob } from '@cring/jobs';
import type { JobContext, JobOutcome } from './job-context.ts';

async function call(
  target: BackendClient,
  ctx: JobContext,
  charmId: string,
  method: string,
  path: string,
  body: string,
) {
  const token = mintCharmJwt({ key: ctx.auth.key, issuer: ctx.auth.issuer, charmId, ttlSeconds: 300 });
  const response = await fetch(new URL(path, target.backend.httpUrl), {
    method,
    headers: { authorization: `bearer ${token}`, 'content-type': 'application/json' },
    body: method === 'GET' ? undefined : body, // the server ignores GET bodies; fetch refuses them
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (response.status !== 200)
    throw new Error(`${target.backend.name} answered ${response.status}: ${text.trim()}`);
  return text;
}

/** Replays an encrypt key, with the created_at every other backend got, on a backend that missed it. */
export async function replayEncryptKey(
  job: EncryptKeyJob,
  target: BackendClient,
  ctx: JobContext,
): Promise<JobOutcome> {
  await call(target, ctx, job.charmId, 'POST', '/v1/encrypt-key', JSON.stringify(job.encryptKey));
  return { outcome: 'applied' };
}

/** Brings a backend's counter up to at least `atLeast`, one POST at a time (counters only go up). */
export async function catchUpSeq(job: SeqJob, target: BackendClient, ctx: JobContext): Promise<JobOutcome> {
  const lock = await ctx.manifest.lockPath(job.charmId, `seq:${job.name}`, { waitMs: 60_000 });
  try {
    const path = `/v1/seq/${encodeURIComponent(job.name)}`;
    let seq = (JSON.parse(await call(target, ctx, job.charmId, 'GET', path, 'null')) as { seq: number }).seq;
    const start = seq;
    while (seq < job.atLeast)
      seq = (JSON.parse(await call(target, ctx, job.charmId, 'POST', path, 'null')) as { seq: number }).seq;
    return { outcome: 'applied', detail: `${start} → ${seq}` };
  } finally {
    await lock.release();
  }
}
