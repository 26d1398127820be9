// Each backend as if on its own host: an agent beside it is the only process that opens its data dir. The central
// processes (gateway, replicator, healer, cring) run under Node's permission model without read access to any
// data dir, so every flow in this suite also proves that no central code path opens one.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { accountKeys } from '@cring/accounts';
import type { Cluster } from '@cring/local-cluster';
import { accountOn } from '../harness/accounts.ts';
import { runCli } from '../harness/cli.ts';
import { directClient, newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';

const inside = (path: string, dir: string) => {
  const rel = relative(dir, path);
  return rel === '' || (!rel.startsWith('..') && !rel.startsWith('/'));
};

function nodeWithCentralFlags(cluster: Cluster, code: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cluster.central.nodeArgs, '-e', code],
      { timeout: 30_000 },
      (err, _out, stderr) => resolve({ code: err ? Number(err.code ?? 1) : 0, stderr }),
    );
  });
}

async function eventually(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(250);
  }
}

describe('backends on their own hosts', () => {
  it('central processes name no data dir and cannot open one; everything still works', async (t) => {
    const cluster = await useCluster(t, { withHealer: true });
    const dataDirs = cluster.backends.map((b) => b.info.dataDir);
    const central = [cluster.gateway, cluster.replicator, cluster.healer];
    for (const process of central) {
      assert.ok(process?.pid, 'running');
      const env = process.spec.env ?? {};
      assert.equal(env.CRING_BACKEND_DATA_DIRS, undefined);
      for (const [name, value] of Object.entries(env)) {
        for (const dir of dataDirs)
          assert.ok(!value.includes(dir), `${process.spec.name}: ${name} names ${dir}`);
      }
      // What the kernel says the process runs with, not only what we meant to pass.
      const argv = readFileSync(`/proc/${process.pid}/cmdline`, 'utf8').split('\0');
      assert.ok(argv.includes('--permission'), `${process.spec.name} runs under the permission model`);
      for (const flag of argv.filter((a) => a.startsWith('--allow-fs-'))) {
        const allowed = flag.slice(flag.indexOf('=') + 1);
        for (const dir of dataDirs)
          assert.ok(!inside(dir, allowed), `${process.spec.name}: ${flag} covers ${dir}`);
      }
    }
    // The same flags really keep a process out: the DB file is refused, the cluster key is readable.
    const db = join(dataDirs[0] as string, 'db', 'charm_sqlite.db');
    const denied = await nodeWithCentralFlags(
      cluster,
      `require('node:fs').readFileSync(${JSON.stringify(db)})`,
    );
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /ERR_ACCESS_DENIED/);
    const key = `require('node:fs').readFileSync(${JSON.stringify(cluster.serverKeyFile)})`;
    assert.equal((await nodeWithCentralFlags(cluster, key)).code, 0);

    // A new user's first fs cp succeeds (account sync through the agents), and the account is on every backend.
    const { charm, charmId } = await newUser(cluster, 'alice');
    const file = join(cluster.topology().runDir, 'a.txt');
    writeFileSync(file, 'alice\n');
    await charm.run(['fs', 'cp', file, 'charm:/a.txt']);
    const reference = accountOn(cluster, 0, charmId);
    assert.ok(reference);
    for (let i = 1; i < cluster.backends.length; i++)
      assert.deepEqual(accountOn(cluster, i, charmId), reference);
    // The operator commands run confined too (runCli passes the same flags).
    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json']);
    assert.equal(scan.code, 0, scan.stderr);
    assert.ok(JSON.parse(scan.stdout).totalUsers >= 1, 'the scan found the users through the agents');
  });

  it('a whole host down (agent and server): sign-ups and writes go on; after it returns everything converges', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const dir = cluster.topology().runDir;
    const local = (name: string, content: string) => {
      writeFileSync(join(dir, name), content);
      return join(dir, name);
    };
    const known = await newUser(cluster, 'known');
    await known.charm.run(['fs', 'cp', local('before.txt', 'before\n'), 'charm:/before.txt']);
    await state.waitForDrain(known.charmId);

    const host = 0; // the account primary's host: sign-ups move to the next backend, and stay there when it returns
    await Promise.all([cluster.agents[host]?.stop(), cluster.backends[host]?.process.stop()]);
    const fresh = await newUser(cluster, 'fresh');
    await fresh.charm.run(['fs', 'cp', local('fresh.txt', 'fresh\n'), 'charm:/fresh.txt']);
    await known.charm.run(['fs', 'cp', local('during.txt', 'during\n'), 'charm:/during.txt']);
    assert.equal((await known.charm.run(['fs', 'cat', 'charm:/during.txt'])).stdout, 'during\n');
    assert.equal((await fresh.charm.run(['fs', 'cat', 'charm:/fresh.txt'])).stdout, 'fresh\n');

    await Promise.all([cluster.backends[host]?.process.start(), cluster.agents[host]?.start()]);
    const returnedAt = Date.now();
    // The lease stays where the sign-up happened, so the new user's next login meets their account, not a fork.
    assert.equal(await state.redis.get(accountKeys.primary()), 'charm2');
    assert.equal((await fresh.charm.run(['id'])).stdout.trim(), fresh.charmId);
    for (const user of [known, fresh]) {
      await eventually(`${user.charmId}'s account identical on every backend`, () => {
        const reference = accountOn(cluster, 0, user.charmId);
        return (
          reference !== undefined &&
          cluster.backends.every(
            (_, i) => JSON.stringify(accountOn(cluster, i, user.charmId)) === JSON.stringify(reference),
          )
        );
      });
      await state.waitForDrain(user.charmId, 180_000);
      const files = filesOnBackend(cluster, 0, user.charmId);
      assert.ok(files.size > 0);
      for (let i = 1; i < cluster.backends.length; i++)
        assert.deepEqual(
          filesOnBackend(cluster, i, user.charmId),
          files,
          `backend ${i} holds ${user.charmId}'s files`,
        );
    }
    console.log(
      JSON.stringify({
        hostDown: 'charm1 (agent and server)',
        convergedSecondsAfterReturn: (Date.now() - returnedAt) / 1000,
      }),
    );
  });

  it("a copy made by the healer carries the original's modification time, so listings agree", async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'lister');
    const file = join(cluster.topology().runDir, 'notes.txt');
    writeFileSync(file, 'notes\n');
    await charm.run(['fs', 'cp', file, 'charm:/notes.txt']);
    await state.waitForDrain(charmId);
    const userDir = (i: number) => join(cluster.backends[i]?.info.dataDir as string, 'files', charmId);
    const copies = (i: number) =>
      [...filesOnBackend(cluster, i, charmId).keys()].map((p) => join(userDir(i), p));
    const [stored] = copies(0);
    assert.ok(stored, 'the file is stored on backend 1');
    // Make the original clearly older than any copy made now, on both backends that will serve as sources.
    const original = new Date('2024-02-03T04:05:06Z');
    for (const i of [0, 1]) for (const path of copies(i)) utimesSync(path, original, original);
    for (const path of copies(2)) rmSync(path);

    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json']);
    assert.equal(scan.code, 0, scan.stderr);
    const repaired = copies(2);
    assert.equal(repaired.length, 1, 'the healer copied the file back');
    assert.equal(statSync(repaired[0] as string).mtimeMs, original.getTime());
    const listing = async (i: number) =>
      (await directClient(cluster, 'lister', i).run(['fs', 'ls', 'charm:/'])).stdout;
    assert.equal(
      await listing(2),
      await listing(0),
      'charm fs ls shows the same time on the repaired backend',
    );
  });
});
