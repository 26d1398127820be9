// Backends that stay healthy for months: the agent sweeps the upload temp files charm v0.12.6 leaks, and a
// backend whose disk runs under its free-space reserve is written around, reported, and repaired once freed.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster } from '@cring/local-cluster';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState } from '../harness/replicas.ts';

const MiB = 1024 * 1024;

/** Go's mime/multipart temp files (what v0.12.6 leaks) in a backend's TMPDIR: count and bytes. */
function leakedTempFiles(cluster: Cluster): { files: number; bytes: number } {
  let files = 0;
  let bytes = 0;
  for (const { tmpDir } of cluster.backends.map((b) => b.info)) {
    for (const name of readdirSync(tmpDir).filter((n) => /^multipart-\d+$/.test(n))) {
      files++;
      bytes += statSync(join(tmpDir, name)).size;
    }
  }
  return { files, bytes };
}

/** One metric's value summed over every agent's /metrics. */
async function agentMetric(cluster: Cluster, name: string): Promise<number> {
  let total = 0;
  for (const backend of cluster.topology().backends) {
    const text = await (await fetch(`${backend.agent.url}/metrics`)).text();
    for (const line of text.split('\n')) {
      if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.split(' ').pop());
    }
  }
  return total;
}

async function post(cluster: Cluster, token: string, path: string, bytes: Buffer): Promise<Response> {
  const { body, contentType } = uploadBody(bytes);
  return fetch(gatewayUrl(cluster, `/v1/fs${path}?mode=420`), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': contentType },
    body,
  });
}

describe('backend disks', () => {
  it('uploads over 32 MiB leave no temp file behind once the agents have swept', async (t) => {
    const cluster = await useCluster(t, {
      // Short enough for a test; the default (10 min) is far above any upload's time in the server.
      agentEnv: { CRING_AGENT_TEMP_MAX_AGE_MS: '20000', CRING_AGENT_TEMP_SWEEP_INTERVAL_MS: '500' },
    });
    const { charmId } = await newUser(cluster, 'tina');
    const token = tokens(cluster).valid(charmId);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const uploads = 3;
    for (let i = 0; i < uploads; i++) {
      const response = await post(cluster, token, `/big-${i}.bin`, randomBytes(40 * MiB));
      assert.equal(response.status, 200, await response.text());
    }
    const afterUploads = leakedTempFiles(cluster);
    await state.waitForDrain(charmId);
    // Every copy (2 quorum writes, 1 replica per upload) left a temp file of the whole upload in its server.
    const deadline = Date.now() + 60_000;
    while ((await agentMetric(cluster, 'cring_agent_temp_files_swept_total')) < uploads * 3) {
      if (Date.now() > deadline)
        assert.fail(`not swept within 60 s: ${JSON.stringify(leakedTempFiles(cluster))}`);
      await sleep(200);
    }
    const sweptBytes = await agentMetric(cluster, 'cring_agent_temp_bytes_swept_total');
    const afterSweep = leakedTempFiles(cluster);
    console.log(
      `temp files of ${uploads} uploads of 40 MiB over 3 backends: right after the uploads ${afterUploads.files} files / ${afterUploads.bytes} bytes on disk; swept ${sweptBytes} bytes; after the sweep ${afterSweep.files} files / ${afterSweep.bytes} bytes`,
    );
    assert.ok(afterUploads.files > 0, 'the servers did leak them (the bug this sweeps up)');
    assert.ok(sweptBytes >= uploads * 3 * 40 * MiB, 'each leaked file held the whole upload');
    assert.deepEqual(afterSweep, { files: 0, bytes: 0 });
  });
});
