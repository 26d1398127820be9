import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatBackends, parseBackends } from '@cring/charm';
import { backendQueueName, QUEUE_PREFIX, S3_QUEUE } from '@cring/jobs';
import { acceptsTcp, type Cluster, ManagedProcess, repoRoot } from '@cring/local-cluster';
import { createRing } from '@cring/ring';
import { Queue } from 'bullmq';
import { accountOn } from '../harness/accounts.ts';
import type { CharmClient } from '../harness/charm-cli.ts';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { tokens } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';
import { ABSENT } from '../nemesis/checker.ts';
import { httpChannel } from '../nemesis/operations.ts';

const HEALER = 'apps/healer/src/cli.ts';

/** The real `healer` CLI with the cluster's environment; the parsed report when --json was passed. */
async function healer(cluster: Cluster, args: string[], env: Record<string, string> = {}) {
  const run = await runCli(cluster, HEALER, args, { env, timeoutMs: 600_000 });
  let report: HealerReport | undefined;
  if (args.includes('--json') && run.stdout.trim() !== '') {
    try {
      report = JSON.parse(run.stdout) as HealerReport;
    } catch {
      assert.fail(`--json printed something that is not JSON:\n${run.stdout}\nstderr: ${run.stderr}`);
    }
  }
  return { ...run, report };
}

interface HealerReport {
  healthy: boolean;
  exitCode: number;
  options: { dryRun: boolean; deep: boolean; prune: boolean };
  stats: Record<
    | 'users'
    | 'files'
    | 'bytes'
    | 'hashedBytes'
    | 'missing'
    | 'sizeMismatched'
    | 'hashMismatched'
    | 'deletedCopies'
    | 'writesRolledBack'
    | 'intentsLeftOpen'
    | 'adopted'
    | 'disagreements'
    | 'pruned'
    | 'staleMarkersCleared'
    | 'tombstonesCollected',
    number
  >;
  rates: { filesPerSecond: number; mibPerSecond: number };
  scanSeconds: number;
  findings: { charmId: string; path?: string; target?: string; problem: string; action: string }[];
  unreachable: { target: string; reason: string }[];
  wait?: { completed: number; failed: unknown[]; pending: number };
}

const describeRun = (run: { code: number; stdout: string; stderr: string }) =>
  `exit ${run.code}\nstdout: ${run.stdout.slice(0, 4000)}\nstderr: ${run.stderr.slice(0, 4000)}`;

/** Local files to upload: name → content. */
function localFiles(cluster: Cluster, files: Record<string, Buffer | string>): string {
  const dir = join(cluster.topology().runDir, 'work', randomBytes(4).toString('hex'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

const userDir = (cluster: Cluster, index: number, charmId: string) =>
  join(cluster.backends[index]?.info.dataDir as string, 'files', charmId);

/** The harness's view of the cluster's Redis, quiet once the cluster is stopped before it is closed. */
function stateOf(t: TestContext, cluster: Cluster) {
  const state = clusterState(cluster);
  state.redis.on('error', () => {});
  t.after(() => state.close());
  return state;
}

/** Every backend's tree of the user (path → sha256), by backend index. */
const allTrees = (cluster: Cluster, charmId: string) =>
  cluster.backends.map((_, i) => filesOnBackend(cluster, i, charmId));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

/**
 * A gateway or replicator of the cluster started with other settings (the launcher starts them with every backend
 * of the cluster): the gateway on the cluster's ports, so clients and the issuer stay the same.
 */
function appProcess(
  cluster: Cluster,
  app: 'gateway' | 'replicator',
  tag: string,
  env: Record<string, string>,
) {
  const runDir = cluster.topology().runDir;
  const { httpPort, sshPort, adminPort } = cluster.gatewayPorts;
  const logFile = join(runDir, 'logs', `${app}-${tag}.log`);
  const own: Record<string, string> = app === 'gateway' ? cluster.gatewayEnv : { CRING_METRICS_PORT: '0' };
  return new ManagedProcess({
    name: `${app} (${tag})`,
    command: process.execPath,
    args: [...cluster.central.nodeArgs, join(repoRoot, 'apps', app, 'src', 'main.ts')],
    env: { ...cluster.appEnv, ...cluster.central.env, ...own, ...env },
    logFile,
    ready:
      app === 'gateway'
        ? async () =>
            (await acceptsTcp(httpPort)) && (await acceptsTcp(sshPort)) && (await acceptsTcp(adminPort))
        : async () => readFileSync(logFile, 'utf8').includes('replicator ready'),
  });
}

/** The cluster's app environment limited to its first `count` backends. */
function envWithBackends(cluster: Cluster, count: number): Record<string, string> {
  const backends = parseBackends(cluster.appEnv.CRING_BACKENDS as string).slice(0, count);
  const names = new Set(backends.map((b) => b.name));
  return {
    CRING_BACKENDS: formatBackends(backends),
    CRING_AGENTS: (cluster.appEnv.CRING_AGENTS ?? '')
      .split(',')
      .filter((entry) => names.has(entry.slice(0, entry.indexOf('='))))
      .join(','),
  };
}

async function catAll(charm: CharmClient, files: Record<string, string>, when: string) {
  for (const [remote, content] of Object.entries(files)) {
    const read = await charm.attempt(['fs', 'cat', `charm:${remote}`]);
    assert.equal(read.code, 0, `${when}: charm fs cat ${remote} failed: ${read.stderr}`);
    assert.equal(read.stdout, content, `${when}: ${remote} reads back`);
  }
}

describe('healer --scan', () => {
  it('restores deleted, truncated and wiped replicas byte-identical, then reports healthy', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const { charm, charmId } = await newUser(cluster, 'hana');
    const dir = localFiles(cluster, {
      'a.txt': 'alpha\n',
      'b.bin': randomBytes(150_000),
      'docs/c.txt': 'gamma\n',
      'docs/deep/d.bin': randomBytes(40_000),
      'e.txt': 'epsilon\n',
    });
    await charm.run(['fs', 'cp', join(dir, 'a.txt'), 'charm:/a.txt']);
    await charm.run(['fs', 'cp', join(dir, 'b.bin'), 'charm:/b.bin']);
    await charm.run(['fs', 'cp', '-r', join(dir, 'docs'), 'charm:/']);
    await charm.run(['fs', 'cp', join(dir, 'e.txt'), 'charm:/e.txt']);
    await state.waitForDrain(charmId);
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.equal(reference.size, 5);
    const paths = [...reference.keys()].sort();

    // Damage: two blobs gone on backend 1, one truncated on backend 2, backend 3's whole tree wiped.
    rmSync(join(userDir(cluster, 0, charmId), paths[0] as string));
    rmSync(join(userDir(cluster, 0, charmId), paths[1] as string));
    truncateSync(join(userDir(cluster, 1, charmId), paths[2] as string), 3);
    rmSync(userDir(cluster, 2, charmId), { recursive: true });

    const run = await healer(cluster, ['--scan', '--json']);
    assert.equal(run.code, 0, describeRun(run));
    const report = run.report as HealerReport;
    assert.equal(report.stats.missing, 2 + 5);
    assert.equal(report.stats.sizeMismatched, 1);
    assert.equal(report.wait?.completed, 8);
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(filesOnBackend(cluster, i, charmId), reference, `backend ${i + 1} is whole again`);
    }
    assert.equal((await charm.run(['fs', 'cat', 'charm:/a.txt'])).stdout, 'alpha\n');

    const again = await healer(cluster, ['--scan']);
    assert.equal(again.code, 0, describeRun(again));
    assert.match(again.stdout, /healthy/);
    assert.match(
      again.stdout,
      /users\s+files\s+missing\s+size-mismatched\s+hash-mismatched\s+repaired\s+unrepairable\s+seconds/,
    );
  });
  it('never resurrects a file deleted while one owner was down', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const { charm, charmId } = await newUser(cluster, 'ines');
    const dir = localFiles(cluster, { 'keep.txt': 'kept\n', 'gone.txt': 'deleted while charm3 was down\n' });
    await charm.run(['fs', 'cp', join(dir, 'keep.txt'), 'charm:/keep.txt']);
    await charm.run(['fs', 'cp', join(dir, 'gone.txt'), 'charm:/gone.txt']);
    await state.waitForDrain(charmId);
    const before = filesOnBackend(cluster, 2, charmId);

    // charm3 misses the delete, and its delete job is lost before it could apply.
    await cluster.replicator?.stop();
    await cluster.backends[2]?.process.stop();
    await charm.run(['fs', 'rm', 'charm:/gone.txt']);
    const pending = await state.manifest.pendingJobs(charmId);
    const lost = pending.find((p) => p.backend === 'charm3' && p.jobId.startsWith('delete-'));
    assert.ok(lost, `a delete job waits for charm3: ${JSON.stringify(pending)}`);
    const queue = new Queue(backendQueueName('charm3'), { connection: state.redis, prefix: QUEUE_PREFIX });
    t.after(() => queue.close());
    await queue.remove(lost.jobId);
    await cluster.backends[2]?.process.start();
    await cluster.replicator?.start();
    assert.deepEqual(filesOnBackend(cluster, 2, charmId), before, 'charm3 still holds the deleted file');
    const goneName = [...before.keys()].find((path) => !filesOnBackend(cluster, 0, charmId).has(path));
    assert.ok(goneName);
    assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /gone\.txt/);

    const run = await healer(cluster, ['--scan', '--json'], { CRING_HEALER_PENDING_GRACE_MS: '0' });
    assert.equal(run.code, 0, describeRun(run));
    const deleted = run.report?.findings.filter((f) => f.problem === 'copy of a deleted path') ?? [];
    assert.ok(
      deleted.some((f) => f.target === 'charm3' && f.path === goneName),
      JSON.stringify(deleted),
    );
    assert.ok(
      deleted.every((f) => f.target === 'charm3' || f.target === 's3'),
      'only charm3 (and S3) held it',
    );
    assert.equal(run.report?.stats.adopted, 0, 'the copy is not adopted: the tombstone wins');
    assert.equal(
      run.report?.stats.staleMarkersCleared,
      1,
      'the lost job no longer keeps reads away from charm3',
    );
    assert.equal(filesOnBackend(cluster, 2, charmId).has(goneName), false);
    assert.deepEqual(filesOnBackend(cluster, 2, charmId), filesOnBackend(cluster, 0, charmId));
    assert.deepEqual(await state.manifest.pendingJobs(charmId), []);
    assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /gone\.txt/);
    assert.notEqual((await charm.attempt(['fs', 'cat', 'charm:/gone.txt'])).code, 0);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/keep.txt'])).stdout, 'kept\n');
    const again = await healer(cluster, ['--scan', '--json']);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(again.report?.healthy, true);
  });

  it('collects tombstones past their retention, but only once no copy they cover is left', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const { charm, charmId } = await newUser(cluster, 'ole');
    const dir = localFiles(cluster, { 'a.txt': 'a\n', 'b.txt': 'b\n' });
    await charm.run(['fs', 'cp', join(dir, 'a.txt'), 'charm:/a.txt']);
    await charm.run(['fs', 'cp', join(dir, 'b.txt'), 'charm:/b.txt']);
    await state.waitForDrain(charmId);
    const copies = new Map(
      [...filesOnBackend(cluster, 0, charmId).keys()].map((path) => [
        path,
        readFileSync(join(userDir(cluster, 0, charmId), path)),
      ]),
    );
    await charm.run(['fs', 'rm', 'charm:/a.txt']);
    await charm.run(['fs', 'rm', 'charm:/b.txt']);
    await state.waitForDrain(charmId);
    const entriesKey = `cring:{${charmId}}:entries`;
    const tombstones = Object.entries(await state.redis.hgetall(entriesKey));
    assert.equal(tombstones.length, 2);
    // Both deletes are 8 days old; an old copy of one of them resurfaces on charm2 (a disk put back).
    for (const [path, json] of tombstones) {
      const aged = { ...JSON.parse(json), at: Date.now() - 8 * 24 * 3600 * 1000 };
      await state.redis.hset(entriesKey, path, JSON.stringify(aged));
    }
    const [resurfaced, bytes] = [...copies][1] as [string, Buffer];
    writeFileSync(join(userDir(cluster, 1, charmId), resurfaced), bytes);

    const first = await healer(cluster, ['--scan', '--json']);
    assert.equal(first.code, 0, describeRun(first));
    assert.equal(first.report?.stats.tombstonesCollected, 1, 'only the tombstone that covers nothing');
    assert.equal(first.report?.stats.adopted, 0);
    assert.deepEqual(
      Object.keys(await state.redis.hgetall(entriesKey)),
      [resurfaced],
      'it still covers a copy',
    );
    assert.equal(filesOnBackend(cluster, 1, charmId).size, 0, 'the tombstone won: the copy is deleted');

    const second = await healer(cluster, ['--scan', '--json']);
    assert.equal(second.code, 0, describeRun(second));
    assert.equal(second.report?.stats.tombstonesCollected, 1);
    assert.deepEqual(await state.redis.hgetall(entriesKey), {});
    for (const tree of allTrees(cluster, charmId)) assert.equal(tree.size, 0);
    assert.equal((await objectsInS3(cluster, charmId)).size, 0);
  });

  it('restores a file that only the S3 backup still holds', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const { charm, charmId } = await newUser(cluster, 'jun');
    const content = randomBytes(70_000);
    const dir = localFiles(cluster, { 'only.bin': content, 'note.txt': 'note\n' });
    await charm.run(['fs', 'cp', join(dir, 'only.bin'), 'charm:/only.bin']);
    await charm.run(['fs', 'cp', join(dir, 'note.txt'), 'charm:/note.txt']);
    await state.waitForDrain(charmId);
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.deepEqual(await objectsInS3(cluster, charmId), reference);
    for (let i = 0; i < 3; i++) rmSync(userDir(cluster, i, charmId), { recursive: true });

    const run = await healer(cluster, ['--scan', '--json']);
    assert.equal(run.code, 0, describeRun(run));
    const restores = run.report?.findings.filter((f) => f.action === 'restore from S3') ?? [];
    assert.equal(restores.length, 6, 'two files, three owners each');
    for (const tree of allTrees(cluster, charmId)) assert.deepEqual(tree, reference);
    const got = await charm.run(['fs', 'cat', 'charm:/note.txt']);
    assert.equal(got.stdout, 'note\n');
  });

  it('after a backend joins, copies every user to its new owners, and --prune clears the former ones', async (t) => {
    const cluster = await useCluster(t, { backendCount: 4, withGateway: false });
    const state = stateOf(t, cluster);
    const three = envWithBackends(cluster, 3);
    let gateway = appProcess(cluster, 'gateway', 'three', three);
    let replicator = appProcess(cluster, 'replicator', 'three', three);
    t.after(() => Promise.all([gateway.stop(), replicator.stop()]));
    await gateway.start();
    await replicator.start();

    // Users until at least one of them gets charm4 among its owners (about 3 in 4 do).
    const ring4 = createRing(['charm1', 'charm2', 'charm3', 'charm4']);
    const users: { charm: CharmClient; charmId: string; files: Record<string, string> }[] = [];
    while (users.length < 3 || !users.some((u) => ring4.preferenceList(u.charmId, 3).includes('charm4'))) {
      assert.ok(users.length < 8, 'the ring never picked charm4');
      const { charm, charmId } = await newUser(cluster, `ring-${users.length}`);
      const files = { '/a.txt': `a of ${charmId}\n`, '/dir/b.txt': `b of ${charmId}\n` };
      const dir = localFiles(cluster, { 'a.txt': files['/a.txt'], 'b.txt': files['/dir/b.txt'] });
      await charm.run(['fs', 'cp', join(dir, 'a.txt'), 'charm:/a.txt']);
      await charm.run(['fs', 'cp', join(dir, 'b.txt'), 'charm:/dir/b.txt']);
      users.push({ charm, charmId, files });
    }
    for (const { charmId } of users) await state.waitForDrain(charmId);
    const references = new Map(users.map((u) => [u.charmId, filesOnBackend(cluster, 0, u.charmId)]));
    for (const { charmId } of users) assert.equal(filesOnBackend(cluster, 3, charmId).size, 0);

    // The ring gains charm4: gateway and replicator restart with every backend.
    await Promise.all([gateway.stop(), replicator.stop()]);
    gateway = appProcess(cluster, 'gateway', 'four', {});
    replicator = appProcess(cluster, 'replicator', 'four', {});
    await gateway.start();
    await replicator.start();
    for (const { charm, files } of users)
      await catAll(charm, files, 'after the ring change, before the scan');
    for (const { charmId } of users) {
      await waitFor(
        `account sync of ${charmId} to charm4`,
        () => accountOn(cluster, 3, charmId) !== undefined,
      );
    }

    // Listings work before the scan too: a new owner's 404 for a directory the manifest knows is skipped.
    for (const { charm } of users) assert.match((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /a\.txt/);
    const run = await healer(cluster, ['--scan', '--json']);
    assert.equal(run.code, 0, describeRun(run));
    const moved = users.filter((u) => ring4.preferenceList(u.charmId, 3).includes('charm4'));
    assert.equal(run.report?.stats.missing, moved.length * 2, 'each moved user lacks two files on charm4');
    for (const { charmId, charm, files } of users) {
      const owners = ring4.preferenceList(charmId, 3);
      for (const owner of owners) {
        const index = Number(owner.slice('charm'.length)) - 1;
        assert.deepEqual(
          filesOnBackend(cluster, index, charmId),
          references.get(charmId),
          `${owner} holds ${charmId}`,
        );
      }
      await catAll(charm, files, 'after the scan');
      assert.match((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /a\.txt/);
    }

    const pruned = await healer(cluster, ['--scan', '--prune', '--json']);
    assert.equal(pruned.code, 0, describeRun(pruned));
    assert.equal(pruned.report?.stats.pruned, moved.length * 2);
    for (const { charmId, charm, files } of users) {
      const owners = ring4.preferenceList(charmId, 3);
      for (const [index, backend] of cluster.backends.entries()) {
        const tree = filesOnBackend(cluster, index, charmId);
        if (owners.includes(backend.info.name)) assert.deepEqual(tree, references.get(charmId));
        else assert.equal(tree.size, 0, `${backend.info.name} is no longer an owner of ${charmId}: pruned`);
      }
      await catAll(charm, files, 'after pruning');
      const entries = await state.manifest.entriesWithin(charmId);
      for (const entry of entries.values()) {
        if (entry.kind === 'file') assert.deepEqual([...entry.holders].sort(), [...owners].sort());
      }
    }
    const again = await healer(cluster, ['--scan', '--json']);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(again.report?.healthy, true);
    await Promise.all([gateway.stop(), replicator.stop()]); // before the cluster's Redis goes
  });

  it('rebuilds the manifest from the backends after Redis lost everything', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const alice = await newUser(cluster, 'kai');
    const bob = await newUser(cluster, 'lea');
    const dir = localFiles(cluster, {
      'one.txt': 'one\n',
      'tree/two.bin': randomBytes(20_000),
      'tree/sub/three.txt': 'three\n',
      'deleted.txt': 'deleted before the loss\n',
    });
    for (const { charm } of [alice, bob]) {
      await charm.run(['fs', 'cp', join(dir, 'one.txt'), 'charm:/one.txt']);
      await charm.run(['fs', 'cp', '-r', join(dir, 'tree'), 'charm:/']);
      await charm.run(['fs', 'cp', join(dir, 'deleted.txt'), 'charm:/deleted.txt']);
      await charm.run(['fs', 'rm', 'charm:/deleted.txt']);
    }
    const before = new Map<string, Map<string, string>>();
    for (const { charmId } of [alice, bob]) {
      await state.waitForDrain(charmId);
      const live = new Map<string, string>();
      for (const [path, entry] of await state.manifest.entriesWithin(charmId)) {
        if (entry.kind === 'file') live.set(path, entry.sha256);
      }
      assert.equal(live.size, 3);
      assert.deepEqual(live, filesOnBackend(cluster, 0, charmId));
      before.set(charmId, live);
    }

    await state.redis.flushall();
    const run = await healer(cluster, ['--scan', '--json']);
    assert.equal(run.code, 0, describeRun(run));
    assert.equal(run.report?.stats.adopted, 6);
    assert.equal(run.report?.stats.disagreements, 0);
    for (const { charmId, charm } of [alice, bob]) {
      const rebuilt = new Map<string, string>();
      for (const [path, entry] of await state.manifest.entriesWithin(charmId)) {
        assert.equal(entry.kind, 'file');
        if (entry.kind !== 'file') continue;
        rebuilt.set(path, entry.sha256);
        assert.deepEqual([...entry.holders].sort(), ['charm1', 'charm2', 'charm3']);
      }
      assert.deepEqual(rebuilt, before.get(charmId), 'the same live files, nothing resurrected');
      for (const tree of allTrees(cluster, charmId)) assert.deepEqual(tree, before.get(charmId));
      assert.deepEqual(await objectsInS3(cluster, charmId), before.get(charmId));
      assert.equal((await charm.run(['fs', 'cat', 'charm:/tree/sub/three.txt'])).stdout, 'three\n');
      assert.doesNotMatch((await charm.run(['fs', 'ls', 'charm:/'])).stdout, /deleted\.txt/);
    }
    assert.deepEqual((await state.manifest.users()).sort(), [alice.charmId, bob.charmId].sort());
    const again = await healer(cluster, ['--scan', '--json']);
    assert.equal(again.code, 0, describeRun(again));
    assert.equal(again.report?.healthy, true);
  });

  it('--dry-run changes nothing, --json is one JSON document, usage and config errors exit 2', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const queues = [...cluster.backends.map((b) => backendQueueName(b.info.name)), S3_QUEUE].map(
      (name) => new Queue(name, { connection: state.redis, prefix: QUEUE_PREFIX }),
    );
    t.after(() => Promise.all(queues.map((q) => q.close())));
    const { charm, charmId } = await newUser(cluster, 'mia');
    const dir = localFiles(cluster, { 'x.txt': 'x\n', 'y.bin': randomBytes(5000) });
    await charm.run(['fs', 'cp', join(dir, 'x.txt'), 'charm:/x.txt']);
    await charm.run(['fs', 'cp', join(dir, 'y.bin'), 'charm:/y.bin']);
    await state.waitForDrain(charmId);
    const [first] = [...filesOnBackend(cluster, 1, charmId).keys()];
    rmSync(join(userDir(cluster, 1, charmId), first as string));
    // A file written straight into a backend: unknown to the manifest.
    writeFileSync(join(userDir(cluster, 2, charmId), 'stray'), 'not through the gateway\n');
    const snapshot = async () => ({
      trees: allTrees(cluster, charmId),
      s3: await objectsInS3(cluster, charmId),
      entries: [...(await state.manifest.entriesWithin(charmId))],
      pending: await state.manifest.pendingJobs(charmId),
      counts: await Promise.all(queues.map((q) => q.getJobCounts())),
      cursor: await state.redis.get('cring:healer:cursor'),
    });
    const before = await snapshot();

    const run = await healer(cluster, ['--scan', '--dry-run', '--deep', '--json']);
    assert.equal(run.code, 1, describeRun(run));
    const report = run.report as HealerReport;
    assert.equal(report.options.dryRun, true);
    assert.equal(report.stats.missing, 1 + 3, 'the removed copy, and the stray file on two owners and S3');
    assert.equal(report.stats.adopted, 1);
    assert.ok(report.findings.some((f) => f.action === 'would adopt' && f.path === '/stray'));
    assert.deepEqual(await snapshot(), before, 'a dry run changed nothing');

    const human = await healer(cluster, ['--scan', '--dry-run']);
    assert.equal(human.code, 1);
    assert.match(human.stdout, /DRY RUN/);
    assert.match(human.stdout, /problems found \(dry run: nothing was changed\)/);

    const badFlag = await healer(cluster, ['--scan', '--frobnicate']);
    assert.equal(badFlag.code, 2);
    assert.match(badFlag.stderr, /Unknown option '--frobnicate'/);
    assert.equal(badFlag.stdout, '');
    const noScan = await healer(cluster, []);
    assert.equal(noScan.code, 2);
    assert.match(noScan.stderr, /pass --scan/);
    const badUser = await healer(cluster, ['--scan', '--user', 'not-a-uuid']);
    assert.equal(badUser.code, 2);
    const badEnv = await healer(cluster, ['--scan'], {
      CRING_REPLICATION_FACTOR: 'three',
      REDIS_URL: 'nope',
    });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /CRING_REPLICATION_FACTOR/);
    assert.match(badEnv.stderr, /REDIS_URL/);
    const help = await healer(cluster, ['--help']);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Usage: healer --scan/);
    assert.deepEqual(await snapshot(), before);

    // The same scan for real, for this user only: everything found is repaired.
    const real = await healer(cluster, ['--scan', '--user', charmId, '--json']);
    assert.equal(real.code, 0, describeRun(real));
    const trees = allTrees(cluster, charmId);
    for (const tree of trees) assert.deepEqual(tree, trees[0]);
    assert.equal(trees[0]?.size, 3);
  });
  it('stops at Ctrl-C after the users in progress, and --resume continues after the last one finished', async (t) => {
    const cluster = await useCluster(t);
    const state = stateOf(t, cluster);
    const ids: string[] = [];
    for (const name of ['nia', 'oto', 'pia']) {
      const { charm, charmId } = await newUser(cluster, name);
      const dir = localFiles(cluster, { 'f.txt': `${name}\n` });
      await charm.run(['fs', 'cp', join(dir, 'f.txt'), 'charm:/f.txt']);
      await state.waitForDrain(charmId);
      ids.push(charmId);
    }
    ids.sort();
    // One user at a time, slowly (each user's scan takes several requests), so Ctrl-C lands mid-scan.
    const child = spawn(
      process.execPath,
      [
        ...cluster.central.nodeArgs,
        join(repoRoot, HEALER),
        '--scan',
        '--json',
        '--max-requests-per-second',
        '3',
      ],
      {
        env: {
          ...process.env,
          ...cluster.appEnv,
          ...cluster.central.env,
          CRING_HEALER_USER_CONCURRENCY: '1',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    const exited = new Promise<number>((resolve) => child.once('exit', (code) => resolve(code ?? -1)));
    await waitFor(
      'the first user to finish',
      async () => (await state.redis.get('cring:healer:cursor')) !== null,
    );
    child.kill('SIGINT');
    assert.equal(await exited, 1, 'an interrupted scan is not a clean bill of health');
    const interrupted = JSON.parse(stdout) as HealerReport & { interrupted: boolean; totalUsers: number };
    assert.equal(interrupted.interrupted, true);
    const done = interrupted.stats.users;
    assert.ok(done >= 1 && done < 3, `scanned ${done} of 3 users`);
    const cursor = JSON.parse((await state.redis.get('cring:healer:cursor')) as string) as {
      lastUser: string;
    };
    assert.equal(cursor.lastUser, ids[done - 1]);

    const resumed = await healer(cluster, ['--scan', '--resume', '--json']);
    assert.equal(resumed.code, 0, describeRun(resumed));
    const report = resumed.report as HealerReport & { totalUsers: number; resumedAfter: string };
    assert.equal(report.resumedAfter, ids[done - 1]);
    assert.equal(report.totalUsers, 3 - done);
    assert.equal(await state.redis.get('cring:healer:cursor'), null, 'a finished scan leaves no cursor');
  });

  it('scan speed: 10,000 files of five users, written straight into the data dirs and adopted', async (t) => {
    const cluster = await useCluster(t);
    const [userCount, dirCount, filesPerDir] = [5, 20, 100];
    const users: string[] = [];
    for (let u = 0; u < userCount; u++) users.push((await newUser(cluster, `speed-${u}`)).charmId);
    for (const charmId of users) {
      for (let i = 0; i < cluster.backends.length; i++) {
        await waitFor(
          `account of ${charmId} on backend ${i + 1}`,
          () => accountOn(cluster, i, charmId) !== undefined,
        );
      }
    }
    let bytes = 0;
    for (const charmId of users) {
      for (let d = 0; d < dirCount; d++) {
        for (let i = 0; i < cluster.backends.length; i++) {
          mkdirSync(join(userDir(cluster, i, charmId), `d${d}`), { recursive: true });
        }
        for (let f = 0; f < filesPerDir; f++) {
          const content = randomBytes(randomInt(512, 8192));
          bytes += content.length;
          for (let i = 0; i < cluster.backends.length; i++) {
            writeFileSync(join(userDir(cluster, i, charmId), `d${d}`, `f${f}`), content, { mode: 0o644 });
          }
        }
      }
    }
    const total = userCount * dirCount * filesPerDir;
    const figures: Record<string, string | number>[] = [];
    const scan = async (label: string, args: string[], env: Record<string, string> = {}) => {
      const run = await healer(cluster, ['--scan', '--json', '--wait-timeout-seconds', '900', ...args], env);
      assert.equal(run.code, 0, describeRun(run));
      const report = run.report as HealerReport;
      assert.equal(report.stats.files, total);
      figures.push({
        scan: label,
        files: report.stats.files,
        MiB: Number((report.stats.bytes / 2 ** 20).toFixed(1)),
        'hashed MiB': Number((report.stats.hashedBytes / 2 ** 20).toFixed(1)),
        seconds: Number(report.scanSeconds.toFixed(1)),
        'files/s': Math.round(report.rates.filesPerSecond),
        'MiB/s': Number(report.rates.mibPerSecond.toFixed(2)),
      });
      return report;
    };
    const adoption = await scan('adopt (hash all 3 copies, record, back up) at 2000 req/s', [
      '--max-requests-per-second',
      '2000',
    ]);
    assert.equal(adoption.stats.adopted, total);
    assert.equal(adoption.stats.missing, total, 'every file lacked only its S3 backup');
    assert.equal(adoption.wait?.completed, total);
    await scan('check presence and size (default 200 req/s)', []);
    await scan('deep: sha256 of every copy and object at 2000 req/s', [
      '--deep',
      '--max-requests-per-second',
      '2000',
    ]);
    await scan(
      'deep, no rate limit to speak of (100000 req/s), 32 paths at once',
      ['--deep', '--max-requests-per-second', '100000'],
      { CRING_HEALER_CONCURRENCY: '32' },
    );
    t.diagnostic(
      `scan speed over ${total} files (${(bytes / 2 ** 20).toFixed(1)} MiB) of ${userCount} users, 3 backends:`,
    );
    for (const row of figures) t.diagnostic(JSON.stringify(row));
  });

  // Seed 7102: the gateway put a refusal Redis had lost back on record (refusal-records.ts) after the directory's
  // delete was committed; every scan then tried to copy back the version the delete had removed everywhere
  // (roll-back unfinished, the intent open for good, yet exit 0).
  it('rolls a refused write back to the delete of its directory committed since (row I2), not to the deleted version', async (t) => {
    const cluster = await useCluster(t);
    const { charmId } = await newUser(cluster, 'under-delete');
    const http = httpChannel(cluster, `bearer ${tokens(cluster).valid(charmId)}`);
    const state = clusterState(cluster);
    t.after(() => state.close());
    assert.equal(await http.write('/dir/z.txt', Buffer.from('deleted with its directory\n')), 'ok');
    await state.waitForDrain(charmId);
    // Refused with two owners down: the one it reached cannot be given the previous version back.
    await Promise.all([cluster.backends[1]?.process.stop(), cluster.backends[2]?.process.stop()]);
    assert.equal(await http.write('/dir/z.txt', Buffer.from('never acknowledged\n')), 'refused');
    await Promise.all([cluster.backends[1]?.process.start(), cluster.backends[2]?.process.start()]);
    const refused = await state.manifest.intent(charmId, '/dir/z.txt');
    assert.equal(refused?.state, 'failed');
    assert.equal(await http.remove('/dir'), 'ok'); // its commit clears the intents below it
    await state.waitForDrain(charmId);
    // The refusal's record retried after the delete, as when Redis had lost it (the record the gateway makes).
    assert.ok(await state.manifest.recordFailedIntent(charmId, refused, refused.touched), 'on record again');

    const scan = await healer(cluster, ['--scan', '--json']);
    assert.equal(scan.code, 0, scan.stdout + scan.stderr);
    assert.equal(scan.report?.stats.writesRolledBack, 1, scan.stdout);
    assert.equal(scan.report?.stats.intentsLeftOpen, 0, scan.stdout);
    assert.equal(await state.manifest.intent(charmId, '/dir/z.txt'), undefined, 'the intent is resolved');
    assert.equal(await http.read('/dir/z.txt'), ABSENT);
    for (let i = 0; i < cluster.backends.length; i++)
      assert.equal(filesOnBackend(cluster, i, charmId).size, 0, `charm${i + 1} holds nothing`);
    assert.equal((await objectsInS3(cluster, charmId)).size, 0, 'the bucket holds nothing current');
  });
});
