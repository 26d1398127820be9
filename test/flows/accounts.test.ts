import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { openBackendDb } from '@cring/accounts';
import type { Cluster } from '@cring/local-cluster';
import { accountOn } from '../harness/accounts.ts';
import { gatewayClient, newUser, sameKeyClient } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState, filesOnBackend } from '../harness/replicas.ts';
import { linkDevices } from '../harness/tmux.ts';

function userCount(cluster: Cluster, backendIndex: number): number {
  const backend = cluster.backends[backendIndex];
  if (!backend) throw new Error(`no backend #${backendIndex}`);
  const db = openBackendDb({ name: backend.info.name, dataDir: backend.info.dataDir });
  try {
    return (db.prepare('SELECT count(*) AS n FROM charm_user').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Waits until every backend holds the same account rows for the user (account sync rounds run every 5 s). */
async function accountEverywhere(
  cluster: Cluster,
  charmId: string,
  check: (keys: number) => boolean,
  timeoutMs = 30_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const views = cluster.backends.map((_, i) => accountOn(cluster, i, charmId));
    const reference = views[0];
    if (
      reference &&
      check(reference.keys.length) &&
      views.every((v) => JSON.stringify(v) === JSON.stringify(reference))
    ) {
      return reference;
    }
    if (Date.now() > deadline)
      throw new Error(`account ${charmId} differs between backends: ${JSON.stringify(views)}`);
    await sleep(250);
  }
}

describe('accounts on every backend', () => {
  it('the account primary fails: the same user reaches another backend with the same identity and data', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm, charmId } = await newUser(cluster, 'erin');
    const local = join(cluster.topology().runDir, 'erin.txt');
    writeFileSync(local, 'erin\n');
    await charm.run(['fs', 'cp', local, 'charm:/erin.txt']);
    await charm.run(['kv', 'set', 'pet', 'cat']);
    const account = await accountEverywhere(cluster, charmId, (keys) => keys === 1);
    await state.waitForDrain(charmId);
    const usersOnSecond = userCount(cluster, 1);

    await cluster.backends[0]?.process.stop();
    assert.equal((await charm.run(['id'])).stdout.trim(), charmId, 'the same charm_id over SSH');
    assert.equal((await charm.run(['fs', 'cat', 'charm:/erin.txt'])).stdout, 'erin\n');
    assert.match((await charm.run(['kv', 'list'])).stdout, /pet\s+cat/);
    await charm.run(['kv', 'set', 'pet', 'dog']);
    assert.equal(userCount(cluster, 1), usersOnSecond, 'no second account was created on the new primary');
    assert.deepEqual(
      accountOn(cluster, 1, charmId)?.keys,
      account.keys,
      'same public key and encrypt keys, same order',
    );
  });

  it('two devices linked with charm link both read the same files after the primary fails over', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm: desktop, charmId } = await newUser(cluster, 'desktop');
    const local = join(cluster.topology().runDir, 'shared.txt');
    writeFileSync(local, 'shared between devices\n');
    await desktop.run(['fs', 'cp', local, 'charm:/shared.txt']);
    const phone = gatewayClient(cluster, 'phone');
    const phoneOwnId = (await phone.run(['id'])).stdout.trim();
    assert.notEqual(phoneOwnId, charmId);

    await linkDevices(cluster, desktop.dataDir, phone.dataDir);
    assert.equal((await phone.run(['id'])).stdout.trim(), charmId, 'the phone joined the desktop account');
    // Both keys on every backend, each with the desktop's encrypt key first (keys[0] names every path).
    const desktopKey = accountOn(cluster, 0, charmId)?.keys[0]?.encryptKeys[0]?.globalId;
    const account = await accountEverywhere(cluster, charmId, (keys) => keys === 2);
    for (const key of account.keys) assert.equal(key.encryptKeys[0]?.globalId, desktopKey);
    await state.waitForDrain(charmId);

    await cluster.backends[0]?.process.stop();
    assert.equal((await phone.run(['fs', 'cat', 'charm:/shared.txt'])).stdout, 'shared between devices\n');
    assert.equal((await desktop.run(['fs', 'cat', 'charm:/shared.txt'])).stdout, 'shared between devices\n');
    assert.equal((await phone.run(['id'])).stdout.trim(), charmId);
  });

  it('kv set from two devices across a failover never reuses a seq number', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charm: first, charmId } = await newUser(cluster, 'kv');
    const second = sameKeyClient(cluster, 'kv', 'second');
    await first.run(['kv', 'set', 'a', '1']);
    await second.run(['kv', 'set', 'b', '2']);
    await state.waitForDrain(charmId);
    await accountEverywhere(cluster, charmId, (keys) => keys === 1);
    await cluster.backends[0]?.process.stop();
    await first.run(['kv', 'set', 'c', '3']);
    await second.run(['kv', 'set', 'd', '4']);
    await cluster.backends[0]?.process.start();
    await first.run(['kv', 'set', 'e', '5']);
    await second.run(['kv', 'set', 'f', '6']);
    await state.waitForDrain(charmId);

    // Each kv set uploads one backup named by its seq: six sets, six distinct backups, on every backend.
    for (let i = 0; i < cluster.backends.length; i++) {
      assert.equal(filesOnBackend(cluster, i, charmId).size, 6, `backend ${i + 1} holds six kv backups`);
    }
    for (const device of [first, second]) {
      await device.run(['kv', 'sync']);
      const list = (await device.run(['kv', 'list'])).stdout;
      for (const [key, value] of [
        ['a', '1'],
        ['b', '2'],
        ['c', '3'],
        ['d', '4'],
        ['e', '5'],
        ['f', '6'],
      ]) {
        assert.match(list, new RegExp(`${key}\\s+${value}`), `${device.dataDir} sees ${key}`);
      }
    }
  });
});
