// Backends that stay healthy for months: the agent sweeps the upload temp files charm v0.12.6 leaks, and a
// backend whose disk runs under its free-space reserve is written around, reported, and repaired once freed.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statfsSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backendQueueName } from '@cring/jobs';
import type { Cluster } from '@cring/local-cluster';
import { createRing } from '@cring/ring';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';

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

/** Waits for `check` to hold, polling every 200 ms; fails with `what` after the deadline. */
async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** The gateway's own view of a backend (admin /status): whether it still sends writes there. */
async function gatewaySeesFull(cluster: Cluster, name: string): Promise<boolean> {
  const response = await fetch(`http://127.0.0.1:${cluster.gatewayPorts.adminPort}/status`);
  const status = (await response.json()) as {
    backends: { name: string; space?: { underReserve: boolean } }[];
  };
  return status.backends.find((b) => b.name === name)?.space?.underReserve === true;
}

/** The backends' rows of `cring status`. */
async function cringStatusBackends(cluster: Cluster): Promise<string> {
  const run = await runCli(cluster, 'apps/cring/src/cli.ts', ['status']);
  assert.equal(run.code, 0, run.stderr);
  return run.stdout.slice(0, run.stdout.indexOf('\n\n'));
}

const TMPFS_MIB = 48;
const RESERVE_BYTES = 8 * MiB;

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

  it('a backend whose small disk fills is written around, reported, refused with 507 when too few have room, and healed once freed', async (t) => {
    // Every data dir on its own tmpfs (real ENOSPC, real statfs), made here and removed even if the test fails.
    const mountRoot = mkdtempSync(join(tmpdir(), 'cring-disks-'));
    const mounts: string[] = [];
    let cluster: Cluster | undefined;
    t.after(async () => {
      await cluster?.stop(); // nothing may hold a file on the mounts
      for (const mount of mounts) {
        try {
          execFileSync('umount', [mount]);
        } catch {
          execFileSync('umount', ['-l', mount]);
        }
      }
      rmSync(mountRoot, { recursive: true, force: true });
    });
    cluster = await useCluster(t, {
      logLevel: 'info',
      prepareDataDir: (name, dataDir) => {
        const mount = join(mountRoot, name);
        mkdirSync(mount);
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MIB}m`, 'tmpfs', mount]);
        mounts.push(mount);
        rmSync(dataDir, { recursive: true, force: true });
        symlinkSync(mount, dataDir); // the run folder holds a link: deleting it never reaches into the mount
      },
      // 5% of 48 MiB is 2.4 MiB: the byte reserve is the larger, so it decides.
      agentEnv: { CRING_BACKEND_FREE_SPACE_RESERVE_BYTES: String(RESERVE_BYTES) },
      appEnv: { CRING_HEALTH_INTERVAL_MS: '500', CRING_REPLICATOR_FULL_BACKEND_RETRY_MS: '1000' },
    });
    const { charmId } = await newUser(cluster, 'fill');
    const token = tokens(cluster).valid(charmId);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const names = cluster.backends.map((b) => b.info.name);
    const [first, second, third] = createRing(names).preferenceList(charmId, 3) as [string, string, string];
    const indexOf = (name: string) => names.indexOf(name);
    const mountOf = (name: string) => join(mountRoot, name);
    const freeOf = (name: string) => {
      const stats = statfsSync(mountOf(name));
      return stats.bavail * stats.bsize;
    };
    const ballast = (name: string, leaveFreeBytes: number) => {
      const size = freeOf(name) - leaveFreeBytes;
      if (size > 0) writeFileSync(join(mountOf(name), 'ballast.bin'), Buffer.alloc(size, 1));
    };
    const seen: string[] = [];
    const write = async (label: string) => {
      const response = await post(cluster as Cluster, token, `/fill/${label}.bin`, randomBytes(MiB));
      const text = await response.text();
      seen.push(`${label}: ${response.status}`);
      return { status: response.status, text };
    };

    for (let i = 0; i < 3; i++) assert.equal((await write(`before-${i}`)).status, 200);
    await state.waitForDrain(charmId);

    // The user's first owner fills up: an operator's ballast leaves 2 MiB above the reserve, writes do the rest.
    ballast(first, RESERVE_BYTES + 2 * MiB);
    const fillStarted = Date.now();
    let i = 0;
    while (!(await gatewaySeesFull(cluster, first))) {
      assert.ok(i < 30, `${first} never reported under its reserve`);
      assert.equal((await write(`filling-${i++}`)).status, 200, 'writes keep succeeding on the other owners');
    }
    const reportedAfterMs = Date.now() - fillStarted;
    for (let j = 0; j < 3; j++) assert.equal((await write(`full-${j}`)).status, 200);
    const statusWhenFull = await cringStatusBackends(cluster);
    assert.match(statusWhenFull, new RegExp(`${first} .*FULL: under the 8\\.0 MiB reserve`));
    for (const other of [second, third])
      assert.doesNotMatch(statusWhenFull, new RegExp(`${other} .*FULL`), `${other} has room`);
    const agentUrl = cluster.topology().backends[indexOf(first)]?.agent.url;
    const metrics = await (await fetch(`${agentUrl}/metrics`)).text();
    assert.match(metrics, new RegExp(`cring_backend_under_reserve\\{[^}]*backend="${first}"[^}]*\\} 1`));
    const missingOnFirst = () => {
      const onFirst = filesOnBackend(cluster as Cluster, indexOf(first), charmId);
      const onSecond = filesOnBackend(cluster as Cluster, indexOf(second), charmId);
      return [...onSecond].filter(([path, sha]) => onFirst.get(path) !== sha).map(([path]) => path);
    };
    // The replicator takes up the first owner's copies and holds them (no attempt spent) instead of sending them.
    const heldCopies = async () => {
      const port = cluster?.topology().replicator?.metricsPort;
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const line = text
        .split('\n')
        .find((l) => l.includes('outcome="held"') && l.includes(`queue="${backendQueueName(first)}"`));
      return line ? Number(line.split(' ').pop()) : 0;
    };
    await waitFor('copies for the full backend are held', async () => (await heldCopies()) >= 3);
    assert.ok(missingOnFirst().length >= 3, 'the full backend took none of the later writes or their copies');

    // A second owner fills: only one backend has room, fewer than the quorum: 507, and nothing changes.
    ballast(second, RESERVE_BYTES - MiB);
    await waitFor(`the gateway sees ${second} full`, () => gatewaySeesFull(cluster as Cluster, second));
    const pendingBefore = (await state.manifest.pendingJobs(charmId)).length;
    const refused = await write('refused');
    assert.equal(refused.status, 507);
    assert.match(
      JSON.parse(refused.text).message,
      new RegExp(`${[first, second].sort().join(', ')} are under the free-space reserve`),
    );
    assert.equal(await state.manifest.entry(charmId, '/fill/refused.bin'), undefined, 'no version recorded');
    for (const name of names)
      assert.equal(
        filesOnBackend(cluster, indexOf(name), charmId).has('/fill/refused.bin'),
        false,
        `nothing on ${name}`,
      );
    assert.equal((await state.manifest.pendingJobs(charmId)).length, pendingBefore, 'nothing queued');

    // Space is freed: the backends take writes again and the healer brings the first owner up to date.
    for (const name of [first, second]) rmSync(join(mountOf(name), 'ballast.bin'));
    const freedAt = Date.now();
    await waitFor(
      'the gateway sees room again',
      async () =>
        !(await gatewaySeesFull(cluster as Cluster, first)) &&
        !(await gatewaySeesFull(cluster as Cluster, second)),
    );
    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan'], { timeoutMs: 300_000 });
    await waitFor(`${first} holds every acknowledged version`, () => missingOnFirst().length === 0, 120_000);
    const caughtUpMs = Date.now() - freedAt;
    assert.equal((await write('after')).status, 200);
    const statusAfter = await cringStatusBackends(cluster);
    assert.doesNotMatch(statusAfter, /FULL/);
    console.log(
      [
        `filling-disk sequence (owners ${first}, ${second}, ${third}; tmpfs ${TMPFS_MIB} MiB each, reserve ${RESERVE_BYTES / MiB} MiB):`,
        `  client statuses: ${seen.join(', ')}`,
        `  ${first} reported under its reserve ${reportedAfterMs} ms after the ballast`,
        `  cring status while full:\n${statusWhenFull}`,
        `  507 answer: ${JSON.parse(refused.text).message}`,
        `  healer --scan exit ${scan.code}; ${first} caught up ${caughtUpMs} ms after space was freed`,
        `  cring status after:\n${statusAfter}`,
      ].join('\n'),
    );
  });
});
