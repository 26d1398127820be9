import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { accountKeys } from '@cring/accounts';
import { createAgent, createCharmBackend } from '@cring/local-cluster';
import { charmClient } from '../harness/charm-cli.ts';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState } from '../harness/replicas.ts';

describe('operations', () => {
  it('cring status shows a stopped backend, the account primary and the queues', async (t) => {
    const cluster = await useCluster(t);
    await cluster.backends[0]?.process.stop();
    // The gateway moves the account primary's lease on its next health round.
    const state = clusterState(cluster);
    t.after(() => state.close());
    const deadline = Date.now() + 30_000;
    while ((await state.redis.get(accountKeys.primary())) !== 'charm2') {
      assert.ok(Date.now() < deadline, 'the gateway moved the account primary lease to charm2');
      await sleep(100);
    }
    const { code, stdout, stderr } = await runCli(cluster, 'apps/cring/src/cli.ts', ['status']);
    assert.equal(code, 0, stderr);
    console.log(stdout);
    assert.match(stdout, /charm1\s+down/);
    assert.match(stdout, /charm2\s+up\s+up/);
    assert.match(stdout, /account primary: charm2/);
    for (const queue of [
      'backend-charm1',
      'backend-charm2',
      'backend-charm3',
      's3-backup',
      'accounts',
      'healer',
    ]) {
      assert.match(stdout, new RegExp(`${queue}\\s+\\d+`));
    }
    const json = await runCli(cluster, 'apps/cring/src/cli.ts', ['status', '--json']);
    const status = JSON.parse(json.stdout) as {
      accountPrimary: string;
      backends: { name: string; http: string }[];
    };
    assert.equal(status.accountPrimary, 'charm2');
    assert.match(status.backends[0]?.http ?? '', /^down/);
  });

  it('cring refuses bad usage with exit code 2 and says why', async (t) => {
    const cluster = await useCluster(t, { withGateway: false });
    const unknown = await runCli(cluster, 'apps/cring/src/cli.ts', ['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command "frobnicate"/);
    const missing = await runCli(cluster, 'apps/cring/src/cli.ts', ['init-backend', '--from', 'charm1']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--to/);
    const badEnv = await runCli(cluster, 'apps/cring/src/cli.ts', ['status'], {
      env: { CRING_BACKENDS: 'nonsense' },
    });
    assert.equal(badEnv.code, 2);
    assert.match(badEnv.stderr, /CRING_BACKENDS/);
  });

  it('cring init-backend prepares a new backend over the network, through the agents', async (t) => {
    const cluster = await useCluster(t);
    const runDir = cluster.topology().runDir;
    const { charmId } = await newUser(cluster, 'early');
    // A 4th backend host: its agent runs with the cluster key (copied by the operator), its server not yet.
    const fourth = await createCharmBackend({
      name: 'charm4',
      charmBin: cluster.charmBin,
      runDir,
      publicUrl: cluster.publicUrl,
    });
    const agent = await createAgent({
      node: process.execPath,
      backend: fourth.info,
      runDir,
      issuer: cluster.publicUrl,
      serverKeyFile: cluster.serverKeyFile,
    });
    t.after(async () => {
      await fourth.process.stop();
      await agent.process.stop();
    });
    await agent.process.start();
    const env = {
      CRING_BACKENDS: `${cluster.appEnv.CRING_BACKENDS},charm4=${fourth.info.httpUrl}|127.0.0.1:${fourth.info.sshPort}`,
      CRING_AGENTS: `${cluster.appEnv.CRING_AGENTS},charm4=${agent.url}`,
    };
    const init = await runCli(
      cluster,
      'apps/cring/src/cli.ts',
      ['init-backend', '--from', 'charm1', '--to', 'charm4'],
      {
        env,
      },
    );
    assert.equal(init.code, 0, init.stderr);
    assert.match(init.stdout, /prepared charm4 from charm1/);
    await fourth.process.start();
    // The stock client, straight at the new backend: the same identity (same server key, same account rows).
    const direct = charmClient({
      charmBin: cluster.charmBin,
      dataDir: join(runDir, 'clients', 'early'),
      sshPort: fourth.info.sshPort,
      httpPort: fourth.info.httpPort,
    });
    assert.equal((await direct.run(['id'])).stdout.trim(), charmId);
    const again = await runCli(
      cluster,
      'apps/cring/src/cli.ts',
      ['init-backend', '--from', 'charm1', '--to', 'charm4'],
      {
        env,
      },
    );
    assert.equal(again.code, 1);
    assert.match(again.stderr, /already holds \d+ user/);
  });
});
