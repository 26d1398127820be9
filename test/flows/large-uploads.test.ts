import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { describe, it } from 'node:test';
import { manifestKeys } from '@cring/manifest';
import { createRing } from '@cring/ring';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';
import { waitFor } from '../harness/wait.ts';

const MIB = 1024 * 1024;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Bytes a process has had written to storage (page-cache pages it dirtied), from /proc/<pid>/io. */
function storageWriteBytesOf(pid: number): number {
  return Number(/^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
}

/**
 * Uploads 8 MiB to the gateway with Content-Length, killing `victims` once 3 MiB are in and the upload holds its
 * lock (so they die with part of the body). Resolves with the answer and the bytes the gateway wrote to disk.
 */
async function uploadKilling(
  cluster: Awaited<ReturnType<typeof useCluster>>,
  state: ReturnType<typeof clusterState>,
  charmId: string,
  path: string,
  victims: { process: { killNow(): Promise<void> } }[],
) {
  const gatewayPid = cluster.gateway?.pid;
  assert.ok(gatewayPid);
  const data = randomBytes(8 * MIB);
  const { body, contentType } = uploadBody(data);
  const writtenBefore = storageWriteBytesOf(gatewayPid);
  const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = request(`${gatewayUrl(cluster, `/v1/fs${path}`)}?mode=420`, {
      method: 'POST',
      headers: {
        Authorization: `bearer ${tokens(cluster).valid(charmId)}`,
        'Content-Type': contentType,
        'Content-Length': String(body.length),
      },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.once('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    const half = 3 * MIB;
    req.write(body.subarray(0, half)); // past the in-memory threshold: streamed to the first two owners
    void (async () => {
      try {
        await waitFor(
          'the upload to take its lock',
          async () => (await state.redis.hlen(manifestKeys.locks(charmId))) > 0,
        );
        for (const victim of victims) await victim.process.killNow();
        req.end(body.subarray(half));
      } catch (err) {
        req.destroy(err as Error);
      }
    })();
  });
  return { ...answer, data, writtenBytes: storageWriteBytesOf(gatewayPid) - writtenBefore };
}

describe('large uploads', () => {
  it('a streamed upload writes no spool file, and an owner lost mid-body is replaced by a copy of the other owner', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'large');
    const names = cluster.backends.map((b) => b.info.name);
    const [first, second, third] = createRing(names).preferenceList(charmId, 3) as [string, string, string];
    const backendOf = (name: string) =>
      cluster.backends[names.indexOf(name)] as (typeof cluster.backends)[number];
    const upload = await uploadKilling(cluster, state, charmId, '/large.bin', [backendOf(second)]);
    const { status, text, data, writtenBytes } = upload;
    assert.equal(status, 200, text);
    assert.ok(
      writtenBytes < MIB,
      `the gateway wrote ${writtenBytes} bytes to disk for 8 MiB (no spool file)`,
    );
    for (const holder of [first, third]) {
      const files = filesOnBackend(cluster, names.indexOf(holder), charmId);
      assert.equal(files.get('/large.bin'), sha256(data), `${holder} holds the upload's bytes`);
    }
    const entry = await state.manifest.entry(charmId, '/large.bin');
    assert.equal(entry?.kind, 'file');
    assert.deepEqual(entry?.kind === 'file' && [...entry.holders].sort(), [first, third].sort());
  });

  it('both streamed owners lost mid-body: no stand-in is tried, the answer says so, and nothing is stored', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'lost');
    const names = cluster.backends.map((b) => b.info.name);
    const [first, second, third] = createRing(names).preferenceList(charmId, 3) as [string, string, string];
    const backendOf = (name: string) =>
      cluster.backends[names.indexOf(name)] as (typeof cluster.backends)[number];
    const { status, text } = await uploadKilling(cluster, state, charmId, '/lost.bin', [
      backendOf(first),
      backendOf(second),
    ]);
    assert.equal(status, 503, text);
    assert.match(text, /only 0 of the 2 backends a change needs accepted it/);
    assert.match(text, new RegExp(`${third}: not tried`), 'the stand-in had nothing to copy from');
    assert.equal(filesOnBackend(cluster, names.indexOf(third), charmId).has('/lost.bin'), false);
    assert.equal(await state.manifest.entry(charmId, '/lost.bin'), undefined, 'nothing recorded');
  });
});
