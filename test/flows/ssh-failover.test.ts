import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { accountKeys } from '@cring/accounts';
import { type Backend, generateSshKeyPair } from '@cring/charm';
import type { CharmBackend } from '@cring/local-cluster';
import { createLogger } from '@cring/service-runtime';
import { Redis } from 'ioredis';
import ssh2 from 'ssh2';
import { createAccountPrimary } from '../../apps/gateway/src/health/account-primary.ts';
import { createHealthMonitor, type HealthMonitor } from '../../apps/gateway/src/health/health-monitor.ts';
import { createSshPassThrough } from '../../apps/gateway/src/ssh/pass-through.ts';
import { charmClient } from '../harness/charm-cli.ts';
import { useCluster } from '../harness/cluster-fixture.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function hasUser(dataDir: string, charmId: string): boolean {
  const db = new DatabaseSync(join(dataDir, 'db', 'charm_sqlite.db'), { readOnly: true });
  try {
    db.exec('PRAGMA busy_timeout = 5000');
    return db.prepare('SELECT 1 FROM charm_user WHERE charm_id = ?').get(charmId) !== undefined;
  } finally {
    db.close();
  }
}

/** Opens an SSH connection with a throwaway key, keeps it idle for `idleMs`, then runs `id` on it. */
async function idAfterIdle(port: number, idleMs: number): Promise<string> {
  const client = new ssh2.Client();
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve).once('error', reject);
      client.connect({
        host: '127.0.0.1',
        port,
        username: 'charm',
        privateKey: generateSshKeyPair().private,
        keepaliveInterval: 0, // no SSH-level traffic: the TCP session is really idle
      });
    });
    let closedEarly = false;
    client.once('close', () => (closedEarly = true));
    await sleep(idleMs);
    assert.equal(closedEarly, false, 'the idle session was not cut');
    return await new Promise<string>((resolve, reject) => {
      client.exec('id', (err, channel) => {
        if (err) return reject(err);
        let out = '';
        channel.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
        channel.stderr.resume();
        channel.once('close', () => resolve(out));
      });
    });
  } finally {
    client.end();
  }
}

describe('SSH failover at connect time, with the real charm CLI', () => {
  it('reaches the account primary, fails over when it dies, and keeps idle sessions', async (t) => {
    const cluster = await useCluster(t, { withGateway: false });
    const runDir = cluster.topology().runDir;
    const [charm1, charm2] = cluster.backends as [CharmBackend, CharmBackend];
    const backends: Backend[] = cluster.backends.map((b) => ({
      name: b.info.name,
      httpUrl: b.info.httpUrl,
      sshHost: '127.0.0.1',
      sshPort: b.info.sshPort,
    }));

    // A gateway in miniature: health monitor, account primary lease and SSH pass-through, wired as main.ts
    // wires them, on the cluster's Redis (so two of them are two gateways of one cluster).
    const logger = createLogger({ name: 'ssh-failover-test', level: 'silent', pretty: false });
    const redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1 });
    t.after(() => redis.disconnect());
    const miniGateway = (monitor: HealthMonitor, failures: string[] = []) => {
      const primary = createAccountPrimary({
        redis,
        backends,
        isSshHealthy: (name) => monitor.isSshHealthy(name),
        leaseTtlMs: 15_000,
        logger,
      });
      const ssh = createSshPassThrough({
        logger,
        selectBackend: (failed) => primary.choose(failed.map((b) => b.name)),
        onBackendFailure: (backend, err) => {
          failures.push(backend.name);
          monitor.reportSshFailure(backend.name, err);
        },
      });
      t.after(() => ssh.close());
      return { primary, ssh };
    };
    const monitor = createHealthMonitor({ backends, logger, intervalMs: 60_000 });
    t.after(() => monitor.stop());
    const { primary, ssh } = miniGateway(monitor);
    await monitor.checkNow();
    await primary.maintain();
    const sshPort = await ssh.listen(0, '127.0.0.1');
    assert.equal(primary.current(), 'charm1');

    const client = (identity: string) =>
      charmClient({
        charmBin: cluster.charmBin,
        dataDir: join(runDir, 'clients', identity),
        sshPort,
        httpPort: charm1.info.httpPort,
      });

    await t.test('charm id through the pass-through reaches backend 1', async () => {
      const { stdout } = await client('alice').run(['id']);
      const charmId = stdout.trim();
      assert.match(charmId, UUID);
      assert.equal(hasUser(charm1.info.dataDir, charmId), true, 'the account is on charm1');
      assert.equal(hasUser(charm2.info.dataDir, charmId), false, 'and not on charm2');
    });

    await t.test('an SSH session left idle for 5 s is not cut', async () => {
      const charmId = await idAfterIdle(sshPort, 5_000);
      assert.match(charmId, UUID);
      assert.equal(hasUser(charm1.info.dataDir, charmId), true);
    });

    await t.test('after backend 1 stops, a new identity lands on backend 2', async () => {
      await charm1.process.stop();
      await monitor.checkNow();
      assert.equal(monitor.isSshHealthy('charm1'), false);
      assert.match(monitor.health('charm1').lastError ?? '', /ECONNREFUSED/);
      await primary.maintain();
      assert.equal(primary.current(), 'charm2', 'the health round moved the lease');

      const { stdout } = await client('bob').run(['id']);
      const charmId = stdout.trim();
      assert.match(charmId, UUID);
      assert.equal(hasUser(charm2.info.dataDir, charmId), true, 'the account is on charm2');
      assert.equal(hasUser(charm1.info.dataDir, charmId), false);
    });

    // A second gateway that never probed (it believes charm1 is up) routes to the cluster's lease holder.
    const failures: string[] = [];
    const stale = createHealthMonitor({ backends, logger, intervalMs: 60_000 });
    t.after(() => stale.stop());
    const second = miniGateway(stale, failures);
    const secondPort = await second.ssh.listen(0, '127.0.0.1');
    const via = (port: number, identity: string) =>
      charmClient({
        charmBin: cluster.charmBin,
        dataDir: join(runDir, 'clients', identity),
        sshPort: port,
        httpPort: charm1.info.httpPort,
      });

    await t.test('a second gateway with a stale view sends SSH to the same backend', async () => {
      const charmId = (await via(secondPort, 'carol').run(['id'])).stdout.trim();
      assert.match(charmId, UUID);
      assert.equal(hasUser(charm2.info.dataDir, charmId), true);
      assert.deepEqual(failures, [], 'it never tried charm1: the lease, not its own view, decides');
    });

    await t.test(
      'the holder dies: a connect-time failure moves the lease, and both gateways follow',
      async () => {
        const charm3 = cluster.backends[2] as CharmBackend;
        await charm2.process.stop();
        // No health round ran: the second gateway learns it from the refused connect, and moves the lease.
        const charmId = (await via(secondPort, 'dave').run(['id'])).stdout.trim();
        assert.deepEqual(failures, ['charm2', 'charm1'], 'its stale view tries charm1 next, refused too');
        assert.equal(hasUser(charm3.info.dataDir, charmId), true, 'the account is on charm3');
        assert.equal(second.primary.current(), 'charm3');
        const viaFirst = (await via(sshPort, 'dave').run(['id'])).stdout.trim();
        assert.equal(viaFirst, charmId, 'the first gateway sends the same key to the same backend');
      },
    );

    await t.test('a backend that comes back does not take the lease back (sticky)', async () => {
      await charm1.process.start();
      await monitor.checkNow();
      assert.equal(monitor.isSshHealthy('charm1'), true);
      await primary.maintain();
      assert.equal(primary.current(), 'charm3');
      assert.equal((await redis.pttl(accountKeys.primary())) > 0, true, 'renewed, with a lifetime');
    });
  });
});
