import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayRedisReconnects, waitForGatewayRedis } from '../harness/gateway-metrics.ts';
import { tokens } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';
import { ABSENT } from '../nemesis/checker.ts';
import { copyRedis, ownersOf, restoreRedis } from '../nemesis/faults.ts';
import { httpChannel } from '../nemesis/operations.ts';

describe('Redis restored from an older copy (a lost tail)', () => {
  it('the healer records the acknowledged writes the manifest lost again, also one after a delete', async (t) => {
    const cluster = await useCluster(t);
    const { charm, charmId } = await newUser(cluster, 'tail');
    const state = clusterState(cluster);
    t.after(() => state.close());
    const local = (name: string, content: string) => {
      const file = join(cluster.topology().runDir, name);
      writeFileSync(file, content);
      return file;
    };
    await charm.run(['fs', 'cp', local('v1.txt', 'first\n'), 'charm:/kept.txt']);
    await charm.run(['fs', 'cp', local('d1.txt', 'deleted\n'), 'charm:/again.txt']);
    await charm.run(['fs', 'rm', 'charm:/again.txt']);
    await state.waitForDrain(charmId);
    const older = copyRedis(cluster);

    // Acknowledged after the copy: an overwrite, and a write of the deleted path.
    await charm.run(['fs', 'cp', local('v2.txt', 'second, longer\n'), 'charm:/kept.txt']);
    await charm.run(['fs', 'cp', local('d2.txt', 'written after the delete\n'), 'charm:/again.txt']);
    await state.waitForDrain(charmId);
    const writtenMs = Date.now(); // every copy of the last writes is on disk by now
    const reference = filesOnBackend(cluster, 0, charmId);
    assert.equal(reference.size, 2);
    const lostBytes = await restoreRedis(cluster, older);
    assert.ok(lostBytes > 0, 'the copy lacks the last writes');
    await cluster.redis.process.start();

    // Copies younger than the grace may be a refusal not on record yet: a scan leaves them to a later one.
    type Report = {
      findings?: { action: string }[];
      stats?: { recent: number; lostWritesRecovered: number };
    };
    const early = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json'], {
      env: { CRING_LOST_WRITE_GRACE_MS: String(60 * 60_000) },
    });
    const deferred = JSON.parse(early.stdout || '{}') as Report;
    assert.equal(deferred.stats?.lostWritesRecovered, 0, early.stdout + early.stderr);
    assert.equal(deferred.stats?.recent, 2, 'both lost writes left to a later scan');

    // Once the cluster's grace has passed since the last copy was written, they are adopted.
    const graceMs = Number(cluster.appEnv.CRING_LOST_WRITE_GRACE_MS);
    while (Date.now() <= writtenMs + graceMs)
      await new Promise((resolve) => setTimeout(resolve, writtenMs + graceMs + 1 - Date.now()));
    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json']);
    const report = JSON.parse(scan.stdout || '{}') as Report;
    assert.equal(scan.code, 0, scan.stdout + scan.stderr);
    const recovered = (report.findings ?? []).filter((f) => f.action.startsWith('recovered as v'));
    assert.equal(recovered.length, 2, JSON.stringify(report.findings));
    await state.waitForDrain(charmId);
    assert.equal((await charm.run(['fs', 'cat', 'charm:/kept.txt'])).stdout, 'second, longer\n');
    assert.equal((await charm.run(['fs', 'cat', 'charm:/again.txt'])).stdout, 'written after the delete\n');
    for (let i = 0; i < cluster.backends.length; i++)
      assert.deepEqual(filesOnBackend(cluster, i, charmId), reference, `charm${i + 1} holds the last writes`);
    assert.deepEqual(await objectsInS3(cluster, charmId), reference, 'the bucket holds the last writes');
  });

  it('the healer records an acknowledged delete the manifest lost again (row L2), also where an owner kept the file', async (t) => {
    const cluster = await useCluster(t);
    const { charmId } = await newUser(cluster, 'tail-delete');
    const http = httpChannel(cluster, `bearer ${tokens(cluster).valid(charmId)}`);
    const state = clusterState(cluster);
    t.after(() => state.close());
    for (const path of ['/gone.txt', '/dir/a.txt', '/dir/b.txt', '/kept.txt'])
      assert.equal(await http.write(path, Buffer.from(`the bytes of ${path}\n`)), 'ok', path);
    await state.waitForDrain(charmId);
    const older = copyRedis(cluster);

    // Acknowledged after the copy: a file written (unknown to the copy), a file's delete everywhere, and a
    // directory's while its third owner is down (that owner keeps the files: its delete job is lost with the tail).
    assert.equal(await http.write('/dir/c.txt', Buffer.from('written after the copy\n')), 'ok');
    assert.equal(await http.remove('/gone.txt'), 'ok');
    await state.waitForDrain(charmId); // no backend holds it: every read of it finds nothing
    const third = ownersOf(cluster, charmId)[2] as string;
    const thirdBackend = cluster.backends.find((b) => b.info.name === third);
    assert.ok(thirdBackend, third);
    await thirdBackend.process.stop();
    assert.equal(await http.remove('/dir'), 'ok');
    await state.waitForDrain(charmId, 90_000, [third]);
    assert.deepEqual(
      [...(await objectsInS3(cluster, charmId)).keys()],
      ['/kept.txt'],
      'delete markers in S3',
    );
    assert.ok((await restoreRedis(cluster, older)) > 0, 'the copy lacks the deletes');
    await cluster.redis.process.start();
    await thirdBackend.process.start();

    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json']);
    const report = JSON.parse(scan.stdout || '{}') as { findings?: { path?: string; action: string }[] };
    assert.equal(scan.code, 0, scan.stdout + scan.stderr);
    const recovered = (report.findings ?? []).filter((f) => f.action.startsWith('delete recovered as v'));
    assert.deepEqual(
      recovered.map((f) => f.path).sort(),
      ['/dir/a.txt', '/dir/b.txt', '/dir/c.txt', '/gone.txt'],
      JSON.stringify(report.findings),
    );
    await state.waitForDrain(charmId);
    for (const path of ['/gone.txt', '/dir/a.txt', '/dir/b.txt', '/dir/c.txt'])
      assert.equal(await http.read(path), ABSENT, path);
    const kept = createHash('sha256').update('the bytes of /kept.txt\n').digest('hex');
    assert.equal(await http.read('/kept.txt'), kept);
    for (let i = 0; i < cluster.backends.length; i++)
      assert.deepEqual([...filesOnBackend(cluster, i, charmId).keys()], ['/kept.txt'], `charm${i + 1}`);
    assert.deepEqual([...(await objectsInS3(cluster, charmId)).keys()], ['/kept.txt'], 'the bucket');
  });

  // Seed 7104: the refused write's roll-back could not finish (the version it began over was deleted everywhere)
  // and row L2 skips a path with an open intent, so every scan left the path unrepairable.
  it('the healer records a lost delete again under a refused write opened over the deleted version (row I6)', async (t) => {
    const cluster = await useCluster(t);
    const { charmId } = await newUser(cluster, 'tail-refused');
    const http = httpChannel(cluster, `bearer ${tokens(cluster).valid(charmId)}`);
    const state = clusterState(cluster);
    t.after(() => state.close());
    assert.equal(await http.write('/dir/y.txt', Buffer.from('deleted with its directory\n')), 'ok');
    await state.waitForDrain(charmId);
    const older = copyRedis(cluster);
    assert.equal(await http.remove('/dir'), 'ok');
    await state.waitForDrain(charmId);
    const reconnects = await gatewayRedisReconnects(cluster);
    assert.ok((await restoreRedis(cluster, older)) > 0, 'the copy lacks the delete');
    await cluster.redis.process.start();
    await waitForGatewayRedis(cluster, reconnects);

    // A write refused over the version Redis came back with: it reached one owner, none could give that back.
    await Promise.all([cluster.backends[1]?.process.stop(), cluster.backends[2]?.process.stop()]);
    assert.equal(await http.write('/dir/y.txt', Buffer.from('never acknowledged\n')), 'refused');
    await Promise.all([cluster.backends[1]?.process.start(), cluster.backends[2]?.process.start()]);
    const intent = await state.manifest.intent(charmId, '/dir/y.txt');
    assert.equal(intent?.state, 'failed', 'the refusal left its intent open');

    const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--json']);
    const report = JSON.parse(scan.stdout || '{}') as { findings?: { path?: string; action: string }[] };
    assert.equal(scan.code, 0, scan.stdout + scan.stderr);
    const recovered = (report.findings ?? []).filter((f) => f.action.startsWith('delete recovered as v'));
    assert.deepEqual(
      recovered.map((f) => f.path),
      ['/dir/y.txt'],
      JSON.stringify(report.findings),
    );
    await state.waitForDrain(charmId);
    assert.equal(await state.manifest.intent(charmId, '/dir/y.txt'), undefined, 'the intent is resolved');
    assert.equal(await http.read('/dir/y.txt'), ABSENT);
    for (let i = 0; i < cluster.backends.length; i++)
      assert.equal(filesOnBackend(cluster, i, charmId).size, 0, `charm${i + 1} holds nothing`);
    assert.equal((await objectsInS3(cluster, charmId)).size, 0, 'the bucket holds nothing current');
  });
});
