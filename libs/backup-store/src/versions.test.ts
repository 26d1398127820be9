// History, restore reads, retention and the versioning check against a real versitygw.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { CreateBucketCommand, PutBucketVersioningCommand } from '@aws-sdk/client-s3';
import { type BackupStore, type BackupVersion, createBackupStore } from './backup-store.ts';
import { BackupUnavailableError, BucketNotVersionedError } from './errors.ts';
import { historiesOf, versionAt } from './history.ts';
import { pruneNoncurrentVersions } from './retention.ts';
import { signedRequestUrl } from './signed-s3.ts';
import { useTestS3 } from './test-s3.ts';
import { checkBucketVersioning, guardBucketVersioning } from './versioning-guard.ts';

const used = useTestS3();

const put = (charmId: string, path: string, text: string, version = 1) => {
  const bytes = Buffer.from(text);
  return used.store.put(charmId, path, {
    body: Readable.from([bytes]),
    size: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    mode: 0o640,
    version,
  });
};

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

async function textOf(body: Readable | undefined): Promise<string> {
  assert.ok(body, 'the version exists');
  return Buffer.concat(await body.toArray()).toString();
}

async function historyOf(charmId: string, path = '/') {
  const out = new Map<string, { versionId: string; deleteMarker: boolean; isLatest: boolean }[]>();
  for await (const h of historiesOf(used.store.versions(charmId, path))) {
    out.set(
      h.path,
      h.entries.map(({ versionId, deleteMarker, isLatest }) => ({ versionId, deleteMarker, isLatest })),
    );
  }
  return out;
}

describe('object history', () => {
  it('keeps an overwritten version and a deleted file under its delete marker, and reads old versions', async () => {
    const user = randomUUID();
    await put(user, '/over', 'one', 1);
    await put(user, '/over', 'two', 2);
    await put(user, '/dir/gone', 'bye', 3);
    await put(user, '/dirx', 'sibling', 4);
    assert.equal(await used.store.deleteWithin(user, '/dir'), 1);

    const history = await historyOf(user);
    assert.deepEqual([...history.keys()], ['/dir/gone', '/dirx', '/over']);
    const gone = history.get('/dir/gone') ?? [];
    assert.deepEqual(
      gone.map((e) => [e.deleteMarker, e.isLatest]),
      [
        [true, true],
        [false, false],
      ],
      'the delete left a marker over the old version',
    );
    const over = history.get('/over') ?? [];
    assert.equal(over.length, 2);

    const old = await used.store.getVersion(user, '/over', over[1]?.versionId ?? '');
    assert.equal(await textOf(old?.body), 'one');
    assert.equal(old?.version, 1);
    assert.equal(old?.mode, 0o640);
    const deleted = await used.store.getVersion(user, '/dir/gone', gone[1]?.versionId ?? '');
    assert.equal(await textOf(deleted?.body), 'bye');

    assert.deepEqual([...(await historyOf(user, '/dir')).keys()], ['/dir/gone'], 'not the sibling /dirx');
    assert.deepEqual([...(await historyOf(user, '/over')).keys()], ['/over']);
  });

  it('says which version was current at a time, to the millisecond', async () => {
    const user = randomUUID();
    await put(user, '/f', 'first');
    await put(user, '/f', 'second');
    const between = new Date();
    await put(user, '/f', 'third');
    await used.store.deleteWithin(user, '/f');
    const [h] = await collect(historiesOf(used.store.versions(user)));
    const entries = h?.entries ?? [];
    assert.deepEqual(
      entries.map((e) => e.deleteMarker),
      [true, false, false, false],
    );
    assert.ok(
      entries.every(
        (e: BackupVersion, i: number) => i === 0 || (entries[i - 1] as BackupVersion).storedAt >= e.storedAt,
      ),
      'newest first by the time each was stored',
    );
    const then = versionAt(entries, between);
    const body = await used.store.getVersion(user, '/f', then?.versionId ?? '');
    assert.equal(await textOf(body?.body), 'second');
    assert.equal(versionAt(entries, new Date()), undefined, 'deleted now');
    assert.equal(
      versionAt(entries, new Date((entries.at(-1) as BackupVersion).storedAt.getTime() - 1)),
      undefined,
    );
  });

  it('pages through more than 1000 versions, keeping each key whole and newest first', async () => {
    const user = randomUUID();
    const keys = ['/a', '/b', '/c'];
    // Three keys written in parallel, 340 versions each, in order within a key: 1020 entries, two pages.
    await Promise.all(
      keys.map(async (key) => {
        for (let i = 0; i < 340; i++) await put(user, key, `${key} ${i}`, i);
      }),
    );
    const histories = await collect(historiesOf(used.store.versions(user)));
    assert.deepEqual(
      histories.map((h) => [h.path, h.entries.length]),
      keys.map((key) => [key, 340]),
    );
    for (const h of histories) {
      assert.ok(h.entries[0]?.isLatest, `${h.path}: the current version first`);
      const latest = await used.store.getVersion(user, h.path, h.entries[0]?.versionId ?? '');
      assert.equal(await textOf(latest?.body), `${h.path} 339`);
      const oldest = await used.store.getVersion(user, h.path, h.entries.at(-1)?.versionId ?? '');
      assert.equal(await textOf(oldest?.body), `${h.path} 0`);
    }
  });

  it('prunes noncurrent versions past the retention and keeps every current one', async () => {
    const user = randomUUID();
    await put(user, '/kept', 'only');
    await put(user, '/over', 'old');
    await put(user, '/over', 'new');
    await put(user, '/deleted', 'x');
    await used.store.deleteWithin(user, '/deleted');
    const inAYear = new Date(Date.now() + 365 * 24 * 3600 * 1000);
    const dry = await pruneNoncurrentVersions(used.store, { retentionDays: 30, now: inAYear, dryRun: true });
    assert.ok(dry.versions >= 2, `at least this user's two noncurrent versions (${dry.versions})`);
    assert.equal((await historyOf(user)).get('/over')?.length, 2, 'a dry run deletes nothing');

    const notYet = await pruneNoncurrentVersions(used.store, { retentionDays: 30 });
    assert.equal(notYet.versions, 0, 'nothing is 30 days old yet');

    await pruneNoncurrentVersions(used.store, { retentionDays: 30, now: inAYear });
    const history = await historyOf(user);
    assert.deepEqual(
      [...history].map(([path, entries]) => [path, entries.map((e) => [e.deleteMarker, e.isLatest])]),
      [
        ['/deleted', [[true, true]]],
        ['/kept', [[false, true]]],
        ['/over', [[false, true]]],
      ],
    );
    const current = await used.store.get(user, '/over');
    assert.equal(await textOf(current?.body), 'new');
  });
});

describe('the versioning check', () => {
  it('passes a versioned bucket, refuses an unversioned one saying how to fix it, unless overridden', async () => {
    const warnings: string[] = [];
    const warn = (m: string) => warnings.push(m);
    assert.equal(await checkBucketVersioning(used.store, { allowUnversioned: false, warn }), 'enabled');

    const bucket = `plain-${randomUUID().slice(0, 8)}`;
    await used.raw.send(new CreateBucketCommand({ Bucket: bucket }));
    const plain = createBackupStore({ ...used.s3.settings, bucket });
    try {
      await assert.rejects(
        checkBucketVersioning(plain, { endpoint: used.s3.settings.endpoint, allowUnversioned: false, warn }),
        (err: Error) =>
          err instanceof BucketNotVersionedError &&
          err.message.includes(`bucket ${bucket} has versioning never enabled`) &&
          err.message.includes(
            `aws s3api put-bucket-versioning --bucket ${bucket} --endpoint-url ${used.s3.settings.endpoint} --versioning-configuration Status=Enabled`,
          ) &&
          err.message.includes('CRING_S3_ALLOW_UNVERSIONED=true'),
      );
      assert.deepEqual(warnings, []);
      assert.equal(
        await checkBucketVersioning(plain, { allowUnversioned: true, warn }),
        'unversioned, allowed',
      );
      assert.match(warnings[0] ?? '', /THE BACKUP KEEPS NO HISTORY/);
    } finally {
      plain.close();
    }
  });

  it('while S3 is down: starts, and refuses once S3 answers that the bucket is unversioned', async () => {
    // Nothing listens on port 9 of 127.0.0.1.
    const bucket = `later-${randomUUID().slice(0, 8)}`;
    await used.raw.send(new CreateBucketCommand({ Bucket: bucket }));
    let endpoint = 'http://127.0.0.1:9';
    const down = createBackupStore({ ...used.s3.settings, endpoint, bucket, requestTimeoutMs: 2_000 });
    const later = createBackupStore({ ...used.s3.settings, bucket });
    const warnings: string[] = [];
    // The first check goes to the dead endpoint, the next ones to the live S3 (as if it came back).
    const switching: BackupStore = {
      ...later,
      versioning: () => (endpoint === 'up' ? later.versioning() : down.versioning()),
    };
    let refusedWith: Error | undefined;
    const refusal = new Promise<void>((resolve) => {
      void guardBucketVersioning(
        switching,
        {},
        { warn: (m) => warnings.push(m), error: () => {} },
        {
          retryMs: 10,
          refused: (err) => {
            refusedWith = err;
            resolve();
          },
        },
      ).then(() => {
        assert.match(
          warnings[0] ?? '',
          /could not check that bucket .* is versioned: S3 at .* is unreachable/,
        );
        endpoint = 'up';
      });
    });
    await refusal;
    down.close();
    later.close();
    assert.ok(refusedWith instanceof BucketNotVersionedError);
  });

  it('reads a suspended bucket as suspended, and relays a refusal (bad credentials) as S3 said it', async () => {
    const bucket = `paused-${randomUUID().slice(0, 8)}`;
    await used.raw.send(new CreateBucketCommand({ Bucket: bucket }));
    await used.raw.send(
      new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    );
    await used.raw.send(
      new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: 'Suspended' } }),
    );
    const paused = createBackupStore({ ...used.s3.settings, bucket });
    const wrongKey = createBackupStore({ ...used.s3.settings, secretAccessKey: 'not-the-secret' });
    try {
      assert.equal(await paused.versioning(), 'Suspended');
      await assert.rejects(
        wrongKey.versioning(),
        (err: Error) =>
          !(err instanceof BackupUnavailableError) &&
          /^S3 answered 403 SignatureDoesNotMatch to GetBucketVersioning of bucket /.test(err.message),
      );
    } finally {
      paused.close();
      wrongKey.close();
    }
  });

  it('does not load the AWS SDK (a gateway that never reads S3 would hold it for its whole life)', async () => {
    // A fresh process: the check, then whether the SDK is loaded; then a read, which loads it (the probe works).
    const script = `
      import { createRequire } from 'node:module';
      import { createBackupStore } from ${JSON.stringify(import.meta.resolve('./backup-store.ts'))};
      const sdkLoaded = () => Object.keys(createRequire(import.meta.url).cache).some((p) => p.includes('client-s3'));
      const store = createBackupStore(JSON.parse(process.env.SETTINGS));
      const status = await store.versioning();
      const afterCheck = sdkLoaded();
      await store.head('someone', '/nothing');
      console.log(JSON.stringify({ status, afterCheck, afterRead: sdkLoaded() }));
      store.close();`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        ['--input-type=module', '-e', script],
        { env: { ...process.env, SETTINGS: JSON.stringify(used.s3.settings) }, timeout: 60_000 },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      ),
    );
    assert.deepEqual(JSON.parse(out), { status: 'Enabled', afterCheck: false, afterRead: true });
  });

  it('asks the bucket path style, or as the first label of the endpoint host (AWS without an endpoint)', () => {
    const at = (settings: { endpoint?: string; forcePathStyle: boolean }) =>
      signedRequestUrl({ region: 'eu-west-3', bucket: 'backups', ...settings }, undefined, 'versioning=')
        .href;
    assert.equal(
      at({ endpoint: 'http://s3.local:7070', forcePathStyle: true }),
      'http://s3.local:7070/backups?versioning=',
    );
    assert.equal(
      at({ endpoint: 'https://minio.example/s3/', forcePathStyle: true }),
      'https://minio.example/s3/backups?versioning=',
    );
    assert.equal(at({ forcePathStyle: false }), 'https://backups.s3.eu-west-3.amazonaws.com/?versioning=');
    assert.equal(at({ forcePathStyle: true }), 'https://s3.eu-west-3.amazonaws.com/backups?versioning=');
  });
});
