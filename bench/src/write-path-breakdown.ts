import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream, mkdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { type Backend, parseBackends } from '@cring/charm';
import { createBackendHttp, readSmallBody } from '@cring/gateway/src/backends/backend-http.ts';
import { createPlacement } from '@cring/gateway/src/replication/placement.ts';
import { runQuorum } from '@cring/gateway/src/replication/quorum.ts';
import { MultipartScanner } from '@cring/gateway/src/spool/multipart-scanner.ts';
import { spoolUpload } from '@cring/gateway/src/spool/upload-spool.ts';
import { createJobQueues, failedAdds } from '@cring/jobs';
import type { Cluster } from '@cring/local-cluster';
import { createManifest } from '@cring/manifest';
import { createRing } from '@cring/ring';
import { Redis } from 'ioredis';
import { percentile } from './latency-stats.ts';
import { waitForDrain } from './replication-drain.ts';
import type { UploadBody } from './upload-body.ts';

/** The steps of the gateway's POST /v1/fs handler, in order, as timed here. */
export const WRITE_STEPS = [
  'spool (read body, scan, hash, temp file)',
  'lock + write intent (Redis, one script)',
  'quorum POSTs (2 backends in parallel)',
  '  of which the faster backend',
  '  of which waiting for the slower',
  'commit (Redis)',
  'replica + S3 jobs, lock release (Redis, one round trip)',
  'discard temp file',
] as const;

export type WriteStep = (typeof WRITE_STEPS)[number];

/** The same body's parts alone: hashing it, scanning it, writing it to a file, outside the handler. */
export const PART_STEPS = ['sha256 alone', 'multipart scan + sha256', 'temp-file write alone'] as const;

/**
 * Replays the gateway's write path in this process with the gateway's own modules (spoolUpload, runQuorum over
 * its backend HTTP client, the manifest's lock with the write intent, the commit, the jobs sent with the lock's
 * release), with a clock around each step. It
 * shows where a write's time goes without changing the gateway; the body comes from memory, not a socket, and
 * each write starts after the replicator drained the previous one.
 */
export async function breakDownWrites(options: {
  cluster: Cluster;
  charmId: string;
  token: string;
  body: UploadBody;
  iterations: number;
  spoolDir: string;
}): Promise<{ steps: Record<string, number>; parts: Record<string, number> }> {
  const { cluster, charmId, body } = options;
  const backends: Backend[] = parseBackends(cluster.appEnv.CRING_BACKENDS ?? '');
  const names = backends.map((b) => b.name);
  // The gateway's own Redis settings: one retry, no offline queue.
  const redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  const manifest = createManifest(redis);
  const queues = createJobQueues({ connection: redis, manifest, backends: names });
  const placement = createPlacement({
    ring: createRing(names),
    backends,
    replicationFactor: 3,
    isHealthy: () => true,
    hasSpace: () => true,
  });
  const backendHttp = createBackendHttp({ idleTimeoutMs: 30_000 });
  mkdirSync(options.spoolDir, { recursive: true });
  const samples = new Map<string, number[]>();
  const record = (step: string, ms: number) => {
    const list = samples.get(step) ?? [];
    list.push(ms);
    samples.set(step, list);
  };
  try {
    for (let i = 0; i < options.iterations; i++) {
      const path = `/bench/breakdown/${body.fileBytes}/${Date.now()}-${i}`;
      let t = performance.now();
      const lap = (step: WriteStep) => {
        const now = performance.now();
        record(step, now - t);
        t = now;
      };
      const upload = await spoolUpload(
        Readable.from(body.chunks()),
        { contentType: body.contentType, contentLength: String(body.totalBytes) },
        { dir: options.spoolDir, memoryBytes: 1024 * 1024, maxUploadBytes: 1024 * 1024 * 1024 },
      );
      lap('spool (read body, scan, hash, temp file)');
      const candidates = placement.writeCandidates(charmId);
      const { lock } = await manifest.lockPathForWrite(
        charmId,
        path,
        () => candidates.slice(0, 2).map((b) => b.name),
        { waitMs: 60_000 },
      );
      lap('lock + write intent (Redis, one script)');
      const quorumStarted = performance.now();
      const finishedAt: number[] = [];
      const replay = upload.replay;
      if (!replay) throw new Error('the spool kept no body to replay');
      const outcome = await runQuorum(candidates, 2, async (backend) => {
        const response = await backendHttp.request(backend, {
          method: 'POST',
          pathAndQuery: `/v1/fs${path}?mode=420`,
          headers: [
            'Content-Type',
            upload.contentType,
            'Content-Length',
            String(upload.totalBytes),
            'Authorization',
            `bearer ${options.token}`,
          ],
          body: replay(),
        });
        const answer = await readSmallBody(response);
        finishedAt.push(performance.now() - quorumStarted);
        if (response.statusCode !== 200)
          throw new Error(`${backend.name} answered ${response.statusCode}: ${answer}`);
      });
      lap('quorum POSTs (2 backends in parallel)');
      const [faster = Number.NaN, slower = Number.NaN] = finishedAt.sort((a, b) => a - b);
      record('  of which the faster backend', faster);
      record('  of which waiting for the slower', slower - faster);
      const holders = outcome.successes.map((s) => s.backend.name);
      if (holders.length < 2) throw new Error(`no quorum: ${JSON.stringify(outcome.failures)}`);
      const version = await manifest.commitWrite(charmId, path, { ...upload.file, mode: 420, holders }, lock);
      lap('commit (Redis)');
      const job = { charmId, path, version, ...upload.file, mode: 420, sources: holders };
      await queues.ready();
      const { answers } = await manifest.finishChange(lock, () =>
        queues.send([
          ...placement
            .owners(charmId)
            .filter((owner) => !holders.includes(owner.name))
            .map((owner) => ({ backend: owner.name, job: { kind: 'replicate' as const, ...job } })),
          { s3: { kind: 'backup', ...job } },
        ]),
      );
      const refused = failedAdds(answers);
      if (refused.length > 0) throw refused[0];
      lap('replica + S3 jobs, lock release (Redis, one round trip)');
      await upload.discard();
      lap('discard temp file');
      // Replication of this write must not overlap the next one's steps.
      await waitForDrain(manifest, charmId);
    }

    // The parts of the spool step, alone, on the same bytes.
    const parts = new Map<string, number[]>();
    const part = async (name: string, run: () => Promise<void> | void) => {
      const started = performance.now();
      await run();
      const list = parts.get(name) ?? [];
      list.push(performance.now() - started);
      parts.set(name, list);
    };
    const boundary = /boundary=(\S+)/.exec(body.contentType)?.[1] ?? '';
    for (let i = 0; i < Math.min(options.iterations, 5); i++) {
      await part('sha256 alone', () => {
        const hash = createHash('sha256');
        for (const chunk of body.chunks()) hash.update(chunk);
        hash.digest();
      });
      await part('multipart scan + sha256', () => {
        const scanner = new MultipartScanner(boundary);
        for (const chunk of body.chunks()) scanner.write(chunk);
        scanner.finish();
      });
      await part('temp-file write alone', async () => {
        const file = join(options.spoolDir, `bench-write-${i}`);
        const stream = createWriteStream(file);
        for (const chunk of body.chunks()) {
          if (!stream.write(chunk)) await once(stream, 'drain');
        }
        stream.end();
        await finished(stream);
        await rm(file, { force: true });
      });
    }
    const p50 = (map: Map<string, number[]>) =>
      Object.fromEntries([...map].map(([name, values]) => [name, percentile(values, 50)]));
    return { steps: p50(samples), parts: p50(parts) };
  } finally {
    backendHttp.close();
    await queues.close();
    redis.disconnect();
  }
}
