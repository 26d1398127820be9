import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ACCOUNT_BACKUP_OWNER, accountBackupPath, openBackendDb } from '@cring/accounts';
import type { Cluster } from '@cring/local-cluster';
import { accountOn } from '../harness/accounts.ts';
import { runCli } from '../harness/cli.ts';
import { gatewayClient, newUser, sameKeyClient } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { kvSetSeenBy } from '../harness/kv.ts';
import { clusterBackupStore, clusterState, filesOnBackend } from '../harness/replicas.ts';
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
    // Every kv set uploads one backup named by its seq; a reused seq would overwrite an earlier one.
    let sets = 0;
    const set = async (writer: typeof first, reader: typeof first, key: string, value: string) => {
      sets += (await kvSetSeenBy(writer, [reader], key, value)).attempts;
    };
    await set(first, second, 'a', '1');
    await set(second, first, 'b', '2');
    await state.waitForDrain(charmId);
    await accountEverywhere(cluster, charmId, (keys) => keys === 1);
    await cluster.backends[0]?.process.stop();
    await set(first, second, 'c', '3');
    await set(second, first, 'd', '4');
    await cluster.backends[0]?.process.start();
    await set(first, second, 'e', '5');
    await set(second, first, 'f', '6');
    await state.waitForDrain(charmId);

    for (let i = 0; i < cluster.backends.length; i++) {
      assert.equal(
        filesOnBackend(cluster, i, charmId).size,
        sets,
        `backend ${i + 1} holds ${sets} distinct kv backups`,
      );
    }
    for (const device of [first, second]) {
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

describe('account backup', () => {
  it('a wiped cluster restored from the S3 backup: users read all their files again', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const people = [await newUser(cluster, 'gina'), await newUser(cluster, 'hank')];
    const work = join(cluster.topology().runDir, 'work');
    mkdirSync(work, { recursive: true });
    for (const [i, { charm }] of people.entries()) {
      writeFileSync(join(work, `doc-${i}.txt`), `document of user ${i}\n`);
      await charm.run(['fs', 'cp', join(work, `doc-${i}.txt`), 'charm:/docs/doc.txt']);
      // Confirmed through another device: that backup is what the restore must bring back.
      await kvSetSeenBy(
        charm,
        [sameKeyClient(cluster, i === 0 ? 'gina' : 'hank', 'check')],
        'owner',
        `user-${i}`,
      );
    }
    for (const { charmId } of people) await state.waitForDrain(charmId);
    // The replicator backs the account DBs up after a round that changed something.
    const store = clusterBackupStore(cluster);
    t.after(() => store.close());
    // Wait for a backup of every backend's account DB that holds every user's encrypt key.
    const backupHoldsEveryone = async (backend: string) => {
      const object = await store.get(ACCOUNT_BACKUP_OWNER, accountBackupPath(backend));
      if (!object) return false;
      const file = join(work, `${backend}-backup.sqlite`);
      writeFileSync(file, Buffer.concat(await object.body.toArray()));
      const db = new DatabaseSync(file, { readOnly: true });
      try {
        return (
          (db.prepare('SELECT count(*) AS n FROM encrypt_key').get() as { n: number }).n === people.length
        );
      } finally {
        db.close();
      }
    };
    const deadline = Date.now() + 60_000;
    while (
      !(await Promise.all(cluster.backends.map((b) => backupHoldsEveryone(b.info.name)))).every(Boolean)
    ) {
      assert.ok(Date.now() < deadline, 'account backups in S3 hold every user');
      await sleep(500);
    }

    // Disaster: every backend loses its accounts and files (the server key stays: it is configuration).
    await Promise.all(cluster.backends.map((b) => b.process.stop()));
    for (const backend of cluster.backends) {
      rmSync(join(backend.info.dataDir, 'db'), { recursive: true, force: true });
      rmSync(join(backend.info.dataDir, 'files'), { recursive: true, force: true });
    }
    for (const backend of cluster.backends) {
      const restored = await runCli(cluster, 'apps/cring/src/cli.ts', [
        'restore-accounts',
        '--backend',
        backend.info.name,
      ]);
      assert.equal(restored.code, 0, restored.stderr);
    }
    await Promise.all(cluster.backends.map((b) => b.process.start()));
    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan']);
    assert.equal(scan.code, 0, `${scan.stdout}\n${scan.stderr}`);

    for (const [i, { charm, charmId }] of people.entries()) {
      assert.equal((await charm.run(['id'])).stdout.trim(), charmId, 'the same account after the restore');
      assert.equal((await charm.run(['fs', 'cat', 'charm:/docs/doc.txt'])).stdout, `document of user ${i}\n`);
      await charm.run(['kv', 'reset']);
      assert.match((await charm.run(['kv', 'list'])).stdout, new RegExp(`owner\\s+user-${i}`));
    }
  });
});
