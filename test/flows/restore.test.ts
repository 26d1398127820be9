// `cring restore --at` on a real cluster with the real charm CLI: a deleted file and an overwritten one come back
// byte-identical as new versions, on every owner and in S3; --path restores only its subtree; and the processes
// that write the bucket refuse one without versioning.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { historiesOf } from '@cring/backup-store';
import { type Cluster, repoRoot } from '@cring/local-cluster';
import { runCli } from '../harness/cli.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterBackupStore, clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';

const sha256 = (bytes: string | Buffer) => createHash('sha256').update(bytes).digest('hex');
const restore = (cluster: Cluster, args: string[]) =>
  runCli(cluster, 'apps/cring/src/cli.ts', ['restore', ...args]);

/** Every owner and S3 hold the same bytes for the user, and the manifest names them. */
async function assertConverged(cluster: Cluster, state: ReturnType<typeof clusterState>, charmId: string) {
  await state.waitForDrain(charmId);
  const reference = filesOnBackend(cluster, 0, charmId);
  for (let i = 1; i < cluster.backends.length; i++) {
    assert.deepEqual(filesOnBackend(cluster, i, charmId), reference, `backend ${i + 1} holds the same bytes`);
  }
  assert.deepEqual(await objectsInS3(cluster, charmId), reference, 'S3 holds the same bytes');
  for (const [path, entry] of await state.manifest.entriesWithin(charmId)) {
    if (entry.kind === 'file')
      assert.equal(reference.get(path), entry.sha256, `the manifest names ${path}'s bytes`);
  }
  return reference;
}

describe('cring restore', () => {
  it('brings back a deleted and an overwritten file byte-identical, and --path only its subtree', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const work = join(cluster.topology().runDir, 'work');
    mkdirSync(work, { recursive: true });
    const local = (name: string, text: string) => {
      const file = join(work, name);
      writeFileSync(file, text);
      return file;
    };

    await t.test('--at T restores /keep (deleted since) and /over (overwritten since)', async () => {
      const { charm, charmId } = await newUser(cluster, 'restorer');
      const keepV1 = `keep, version 1 ${randomUUID()}\n`;
      const overV1 = `over, version 1 ${randomUUID()}\n`;
      const overV2 = `over, version 2 ${randomUUID()}\n`;
      await charm.run(['fs', 'cp', local('keep', keepV1), 'charm:/keep']);
      await charm.run(['fs', 'cp', local('over1', overV1), 'charm:/over']);
      await state.waitForDrain(charmId);
      const T = new Date();

      await charm.run(['fs', 'rm', 'charm:/keep']);
      await charm.run(['fs', 'cp', local('over2', overV2), 'charm:/over']);
      const extraText = `written after T ${randomUUID()}\n`;
      await charm.run(['fs', 'cp', local('extra', extraText), 'charm:/extra']);
      await state.waitForDrain(charmId);
      const before = await assertConverged(cluster, state, charmId);
      assert.equal(before.size, 2, 'only /over (v2) and /extra before the restore');

      // Deletes stay delete markers: the deleted file's old version is still listed under its marker.
      const store = clusterBackupStore(cluster);
      const deleted = [] as { path: string; markers: boolean[] }[];
      try {
        for await (const h of historiesOf(store.versions(charmId))) {
          if (h.entries[0]?.deleteMarker)
            deleted.push({ path: h.path, markers: h.entries.map((e) => e.deleteMarker) });
        }
      } finally {
        store.close();
      }
      assert.deepEqual(
        deleted.map((d) => d.markers),
        [[true, false]],
        'one delete marker over the kept version',
      );

      const dry = await restore(cluster, ['--user', charmId, '--at', T.toISOString()]);
      assert.equal(dry.code, 0, dry.stderr);
      assert.equal((dry.stdout.match(/^restore +\//gm) ?? []).length, 2, dry.stdout);
      assert.match(dry.stdout, /\(deleted since; \d+ bytes\)/);
      assert.match(dry.stdout, /\(overwritten since; /);
      assert.match(dry.stdout, /^extra .*did not exist then; left as it is/m);
      assert.match(
        dry.stdout,
        /dry run, nothing changed: 2 to restore .*1 deleted and 1 overwritten since.*1 extra/,
      );
      assert.deepEqual(filesOnBackend(cluster, 0, charmId), before, 'a dry run changes nothing');
      assert.equal((await charm.attempt(['fs', 'cat', 'charm:/keep'])).code, 1, '/keep is still deleted');
      assert.equal((await charm.run(['fs', 'cat', 'charm:/over'])).stdout, overV2);

      const versionBefore = await state.manifest.latestVersion(charmId);
      const applied = await restore(cluster, ['--user', charmId, '--at', T.toISOString(), '--apply']);
      assert.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
      assert.match(applied.stdout, /^\[1\/2\] restored .* as v\d+ on \S+, \S+ \(\d+ bytes\)$/m);
      assert.match(applied.stdout, /^\[2\/2\] restored /m);
      assert.match(
        applied.stdout,
        /restored 2 files, \d+ bytes \(1 deleted-then-restored\), 0 unchanged, 1 extra left as is, 0 skipped, 0 errors/,
      );

      assert.equal(sha256((await charm.run(['fs', 'cat', 'charm:/keep'])).stdout), sha256(keepV1));
      assert.equal(sha256((await charm.run(['fs', 'cat', 'charm:/over'])).stdout), sha256(overV1));
      assert.equal(
        (await charm.run(['fs', 'cat', 'charm:/extra'])).stdout,
        extraText,
        'the extra file is left',
      );
      const after = await assertConverged(cluster, state, charmId);
      assert.equal(after.size, 3);
      // Restored files are new versions, newer than the tombstone that deleted /keep.
      const entries = await state.manifest.entriesWithin(charmId);
      const restoredVersions = [...entries.values()].filter(
        (e) => e.kind === 'file' && e.version > versionBefore,
      );
      assert.equal(restoredVersions.length, 2);

      // The healer agrees: nothing to repair, nothing deleted again.
      const scan = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan', '--user', charmId]);
      assert.equal(scan.code, 0, `${scan.stdout}\n${scan.stderr}`);
      assert.deepEqual(await assertConverged(cluster, state, charmId), after);
      assert.equal(sha256((await charm.run(['fs', 'cat', 'charm:/keep'])).stdout), sha256(keepV1));

      const again = await restore(cluster, ['--user', charmId, '--at', T.toISOString(), '--apply']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(
        again.stdout,
        /restored 0 files, 0 bytes .*2 unchanged/,
        'a second restore finds nothing to do',
      );
    });

    await t.test('--path restores only the subtree it names', async () => {
      const { charm, charmId } = await newUser(cluster, 'subtree');
      const inside = `inside ${randomUUID()}\n`;
      const outside = `outside ${randomUUID()}\n`;
      await charm.run(['fs', 'cp', local('inside', inside), 'charm:/docs/inside']);
      await charm.run(['fs', 'cp', local('outside', outside), 'charm:/outside']);
      await state.waitForDrain(charmId);
      const T = new Date();
      await charm.run(['fs', 'rm', 'charm:/docs/inside']);
      await charm.run(['fs', 'rm', 'charm:/outside']);
      await state.waitForDrain(charmId);

      // charm fs encrypts names: the stored path of /docs is the parent of the deleted two-segment path.
      const tombstones = [...(await state.manifest.entriesWithin(charmId))].filter(
        ([, e]) => e.kind === 'tombstone',
      );
      const nested = tombstones.map(([p]) => p).find((p) => p.split('/').length === 3);
      assert.ok(nested, `a tombstone below the stored /docs: ${tombstones.map(([p]) => p)}`);
      const docs = nested.slice(0, nested.lastIndexOf('/'));

      const applied = await restore(cluster, [
        '--user',
        charmId,
        '--path',
        docs,
        '--at',
        T.toISOString(),
        '--apply',
      ]);
      assert.equal(applied.code, 0, `${applied.stdout}\n${applied.stderr}`);
      assert.match(applied.stdout, /restored 1 files/);
      assert.equal((await charm.run(['fs', 'cat', 'charm:/docs/inside'])).stdout, inside);
      assert.equal(
        (await charm.attempt(['fs', 'cat', 'charm:/outside'])).code,
        1,
        'outside the path: still deleted',
      );
      const after = await assertConverged(cluster, state, charmId);
      assert.deepEqual([...after.keys()], [nested]);
    });

    await t.test('refuses bad input without touching anything', async () => {
      const bad = await restore(cluster, ['--user', 'not-an-id', '--at=-1h']);
      assert.equal(bad.code, 2);
      assert.match(bad.stderr, /restore needs --user <charm id>/);
      const noZone = await restore(cluster, ['--user', randomUUID(), '--at', '2026-01-01T10:00:00']);
      assert.equal(noZone.code, 2);
      assert.match(noZone.stderr, /expected an ISO-8601 time with a zone/);
    });

    await t.test(
      'with two of three backends down, a restore misses the quorum and is rolled back',
      async () => {
        const { charm, charmId } = await newUser(cluster, 'unlucky');
        await charm.run(['fs', 'cp', local('lost', `lost ${randomUUID()}\n`), 'charm:/lost']);
        await state.waitForDrain(charmId);
        const T = new Date();
        await charm.run(['fs', 'rm', 'charm:/lost']);
        await state.waitForDrain(charmId);
        const [[path, tombstone] = []] = [...(await state.manifest.entriesWithin(charmId))];
        assert.equal(tombstone?.kind, 'tombstone');

        const down = cluster.backends.slice(1);
        await Promise.all(down.map((b) => b.process.stop()));
        try {
          const applied = await restore(cluster, ['--user', charmId, '--at', T.toISOString(), '--apply']);
          assert.equal(applied.code, 1, `${applied.stdout}\n${applied.stderr}`);
          assert.match(
            applied.stdout,
            /^\[1\/1\] error \S+: written on 1 of the 2 backends a write needs .*nothing was changed$/m,
          );
          assert.match(applied.stderr, /restored 0 files, 0 bytes .* 1 errors/);
          assert.equal(
            filesOnBackend(cluster, 0, charmId).size,
            0,
            'the one backend it reached was rolled back',
          );
          assert.deepEqual(await state.manifest.intents(charmId), [], 'no write intent left open');
          assert.equal((await state.manifest.governing(charmId, path as string))?.kind, 'tombstone');
        } finally {
          await Promise.all(down.map((b) => b.process.start()));
        }
        assert.equal((await charm.attempt(['fs', 'cat', 'charm:/lost'])).code, 1, 'still deleted');
      },
    );

    await t.test('a gateway refuses a bucket without versioning, and starts with the override', async () => {
      const { endpoint, region, accessKeyId, secretAccessKey } = cluster.s3.info;
      const bucket = `plain-${randomUUID().slice(0, 8)}`;
      const raw = new S3Client({
        endpoint,
        region,
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey },
      });
      await raw.send(new CreateBucketCommand({ Bucket: bucket }));
      raw.destroy();
      const env = {
        ...cluster.gatewayEnv,
        S3_BUCKET: bucket,
        CRING_HTTP_PORT: '0',
        CRING_SSH_PORT: '0',
        CRING_ADMIN_PORT: '0',
        CRING_SPOOL_DIR: join(cluster.central.env.TMPDIR ?? tmpdir(), 'spool-of-a-refused-gateway'),
        CRING_INSTANCE_NAME: `refusing-${randomUUID().slice(0, 8)}`,
      };
      const refused = await runCli(cluster, 'apps/gateway/src/main.ts', [], { env, timeoutMs: 60_000 });
      assert.equal(refused.code, 1, refused.stdout + refused.stderr);
      assert.match(refused.stderr, new RegExp(`S3 bucket ${bucket} has versioning never enabled`));
      assert.match(
        refused.stderr,
        /aws s3api put-bucket-versioning --bucket \S+ --endpoint-url \S+ --versioning-configuration Status=Enabled/,
      );

      const allowed = await startsWithWarning(cluster, { ...env, CRING_S3_ALLOW_UNVERSIONED: 'true' });
      assert.match(allowed, /THE BACKUP KEEPS NO HISTORY/);

      // The other processes that write the bucket refuse it the same way.
      const replicator = await runCli(cluster, 'apps/replicator/src/main.ts', [], {
        env: { S3_BUCKET: bucket, CRING_METRICS_PORT: '0' },
        timeoutMs: 60_000,
      });
      assert.equal(replicator.code, 1, replicator.stdout + replicator.stderr);
      assert.match(replicator.stderr, new RegExp(`S3 bucket ${bucket} has versioning never enabled`));
      const healer = await runCli(cluster, 'apps/healer/src/cli.ts', ['--scan'], {
        env: { S3_BUCKET: bucket },
        timeoutMs: 60_000,
      });
      assert.equal(healer.code, 2, healer.stdout + healer.stderr);
      assert.match(healer.stderr, new RegExp(`healer: S3 bucket ${bucket} has versioning never enabled`));
    });
  });
});

/** Starts a gateway, waits (60 s at most) for its warning about the bucket, then stops it; returns its output. */
function startsWithWarning(cluster: Cluster, env: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...cluster.central.nodeArgs, join(repoRoot, 'apps/gateway/src/main.ts')],
      {
        env: { ...process.env, ...cluster.appEnv, ...cluster.central.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let output = '';
    const deadline = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`no warning within 60 s; output:\n${output}`));
    }, 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('KEEPS NO HISTORY')) {
        clearTimeout(deadline);
        child.kill('SIGTERM');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(deadline);
      if (output.includes('KEEPS NO HISTORY')) resolve(output);
      else reject(new Error(`exited (${code}) without the warning:\n${output}`));
    });
  });
}
