import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { accountOn } from '../harness/accounts.ts';
import type { CharmClient } from '../harness/charm-cli.ts';
import { directClient, newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState } from '../harness/replicas.ts';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

async function roundTrip(charm: CharmClient, workDir: string, tag: string) {
  const { stdout: id } = await charm.run(['id']);
  assert.match(id.trim(), UUID);
  const local = join(workDir, `${tag}.txt`);
  const content = `hello from ${tag} ${'x'.repeat(5000)}\n`;
  writeFileSync(local, content);
  await charm.run(['fs', 'cp', local, `charm:/smoke/${tag}.txt`]);
  const { stdout: cat } = await charm.run(['fs', 'cat', `charm:/smoke/${tag}.txt`]);
  assert.equal(cat, content);
  await charm.run(['kv', 'set', `key-${tag}`, `value-${tag}`]);
  const { stdout: value } = await charm.run(['kv', 'get', `key-${tag}`]);
  assert.equal(value.trim(), `value-${tag}`);
  return id.trim();
}

describe('smoke: the real charm CLI', () => {
  it('works directly against a backend and through the gateway', async (t) => {
    const cluster = await useCluster(t);
    const workDir = cluster.topology().runDir;
    await roundTrip(directClient(cluster, 'alice', 0), workDir, 'direct');
    const { charm, charmId } = await newUser(cluster, 'bob');
    assert.equal(await roundTrip(charm, workDir, 'gateway'), charmId);

    // What the gateway stored is on the account primary too, readable without the gateway.
    const { stdout: listing } = await directClient(cluster, 'bob', 0).run(['fs', 'ls', 'charm:/smoke']);
    assert.match(listing, /gateway\.txt/);
  });

  it("a new user's first fs cp through the gateway succeeds, and their account is identical on every backend", async (t) => {
    const cluster = await useCluster(t);
    const { charm, charmId } = await newUser(cluster, 'bob');
    const local = join(cluster.topology().runDir, 'bob.txt');
    writeFileSync(local, 'bob data\n');
    await charm.run(['fs', 'cp', local, 'charm:/bob.txt']); // the first fs use creates the encrypt key
    const reference = accountOn(cluster, 0, charmId);
    assert.equal(reference?.keys.length, 1);
    assert.equal(reference?.keys[0]?.encryptKeys.length, 1);
    for (let i = 1; i < cluster.backends.length; i++)
      assert.deepEqual(accountOn(cluster, i, charmId), reference);

    // Straight to backend 3: the same identity and encrypt key (it decrypts the path names and contents). Backend 3
    // may be the owner that gets the file from the replicator after the quorum answered: wait for that first.
    const state = clusterState(cluster);
    t.after(() => state.close());
    await state.waitForDrain(charmId);
    const onThird = directClient(cluster, 'bob', 2);
    assert.equal((await onThird.run(['id'])).stdout.trim(), charmId);
    assert.equal((await onThird.run(['fs', 'cat', 'charm:/bob.txt'])).stdout, readFileSync(local, 'utf8'));
  });
});
