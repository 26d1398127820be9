import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { acceptsTcp, freePorts, ManagedProcess, repoRoot } from '@cring/local-cluster';
import { charmClient } from '../harness/charm-cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';

describe('TLS', () => {
  it('the gateway serves HTTPS to the charm CLI and talks HTTPS to the backends', async (t) => {
    const cluster = await useCluster(t, { tls: true });
    const state = clusterState(cluster);
    t.after(() => state.close());
    assert.match(cluster.backends[0]?.info.httpUrl ?? '', /^https:/);
    for (const entry of (cluster.appEnv.CRING_AGENTS ?? '').split(','))
      assert.match(entry, /=https:/, 'agents serve HTTPS');
    const { charm, charmId } = await newUser(cluster, 'secure');
    const local = join(cluster.topology().runDir, 'secret.txt');
    writeFileSync(local, 'over TLS\n');
    await charm.run(['fs', 'cp', local, 'charm:/secret.txt']);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/secret.txt'])).stdout, 'over TLS\n');
    await state.waitForDrain(charmId);
    for (let i = 0; i < cluster.backends.length; i++)
      assert.equal(filesOnBackend(cluster, i, charmId).size, 1);
    // Plain HTTP to the gateway's port is not served.
    const plain = await fetch(`http://127.0.0.1:${cluster.gatewayPorts.httpPort}/v1/public/jwks`).catch(
      (err: Error) => err,
    );
    assert.ok(plain instanceof Error || plain.status >= 400);
  });
});

describe('scale-out', () => {
  it('two gateways and two replicators on one Redis: no double work and no lost job', async (t) => {
    // Every copy goes through the jobs (the gateways copy none themselves), so the two replicators share 22 jobs.
    const cluster = await useCluster(t, { appEnv: { CRING_REMAINING_COPIES: 'false' } });
    const state = clusterState(cluster);
    t.after(() => state.close());
    const [http, ssh, admin, metrics] = (await freePorts(4)) as [number, number, number, number];
    const second = (
      name: string,
      script: string,
      env: Record<string, string>,
      ready: () => Promise<boolean>,
    ) =>
      new ManagedProcess({
        name,
        command: process.execPath,
        args: [...cluster.central.nodeArgs, join(repoRoot, script)],
        env: { ...cluster.appEnv, ...cluster.central.env, ...env },
        logFile: join(cluster.topology().runDir, 'logs', `${name}.log`),
        ready,
      });
    const gateway2 = second(
      'gateway-2',
      'apps/gateway/src/main.ts',
      {
        CRING_HTTP_HOST: '127.0.0.1',
        CRING_HTTP_PORT: String(http),
        CRING_SSH_HOST: '127.0.0.1',
        CRING_SSH_PORT: String(ssh),
        CRING_ADMIN_PORT: String(admin),
        CRING_SPOOL_DIR: join(cluster.topology().runDir, 'spool-2'),
      },
      async () => (await acceptsTcp(http)) && (await acceptsTcp(ssh)),
    );
    const replicator2 = second(
      'replicator-2',
      'apps/replicator/src/main.ts',
      { CRING_METRICS_PORT: String(metrics) },
      async () =>
        readFileSync(join(cluster.topology().runDir, 'logs', 'replicator-2.log'), 'utf8').includes(
          'replicator ready',
        ),
    );
    await gateway2.start();
    await replicator2.start();
    t.after(async () => {
      await gateway2.stop();
      await replicator2.stop();
    });

    const { charm: viaFirst, charmId } = await newUser(cluster, 'scaled');
    const viaSecond = charmClient({
      charmBin: cluster.charmBin,
      dataDir: viaFirst.dataDir,
      sshPort: ssh,
      httpPort: http,
    });
    // The first fs use creates the user's encrypt key: once, before the concurrent writes (ten first uses at once
    // would each create a key of their own).
    const first = join(cluster.topology().runDir, 'first.txt');
    writeFileSync(first, 'first\n');
    await viaFirst.run(['fs', 'cp', first, 'charm:/first.txt']);
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 10; i++) {
      const local = join(cluster.topology().runDir, `file-${i}.bin`);
      writeFileSync(local, randomBytes(10_000 + i));
      writes.push(
        (i % 2 === 0 ? viaFirst : viaSecond).run(['fs', 'cp', local, `charm:/spread/file-${i}.bin`]),
      );
    }
    await Promise.all(writes);
    await state.waitForDrain(charmId);

    for (let i = 0; i < cluster.backends.length; i++) {
      assert.equal(filesOnBackend(cluster, i, charmId).size, 11, `backend ${i + 1} holds all eleven files`);
    }
    // Each job ran exactly once, whichever replicator took it.
    const applied = ['replicator', 'replicator-2'].flatMap((name) =>
      readFileSync(join(cluster.topology().runDir, 'logs', `${name}.log`), 'utf8')
        .split('\n')
        .filter((line) => line.includes('"job applied"'))
        .map((line) => (JSON.parse(line) as { jobId: string }).jobId),
    );
    const counts = new Map<string, number>();
    for (const id of applied) counts.set(id, (counts.get(id) ?? 0) + 1);
    assert.ok(applied.length >= 22, `11 replicas and 11 backups applied (${applied.length})`);
    assert.deepEqual(
      [...counts].filter(([, n]) => n > 1),
      [],
      'no job applied twice',
    );
    const byReplicator = ['replicator', 'replicator-2'].map(
      (name) =>
        readFileSync(join(cluster.topology().runDir, 'logs', `${name}.log`), 'utf8').split('"job applied"')
          .length - 1,
    );
    console.log(`jobs applied: replicator ${byReplicator[0]}, replicator-2 ${byReplicator[1]}`);
  });
});
