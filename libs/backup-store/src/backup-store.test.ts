import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import {
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectVersionsCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { type BackupStore, createBackupStore } from './backup-store.ts';
import { BackupChecksumError, BackupConflictError, BackupUnavailableError } from './errors.ts';
import { startTestS3 } from './test-s3.ts';

const MiB = 1024 * 1024;

let s3: Awaited<ReturnType<typeof startTestS3>>;
let store: BackupStore;
let raw: S3Client;
before(async () => {
  s3 = await startTestS3();
  store = createBackupStore(s3.settings);
  raw = s3.rawClient();
});
after(async () => {
  store.close();
  store.close();
  raw.destroy();
  await s3.stop();
});

const newUser = () => randomUUID();
const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const fileOf = (bytes: Buffer, version = 1, mode = 0o644) => ({
  body: Readable.from([bytes]),
  size: bytes.length,
  sha256: sha256Of(bytes),
  mode,
  version,
});

async function readAll(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

// Large bodies are generated in 64 KiB chunks (each stamped with its index, so parts differ) and never held whole.
const CHUNK_BYTES = 64 * 1024;
const pattern = randomBytes(MiB);
function* patternedChunks(sizeBytes: number): Generator<Buffer> {
  for (let offset = 0, index = 0; offset < sizeBytes; offset += CHUNK_BYTES, index++) {
    const length = Math.min(CHUNK_BYTES, sizeBytes - offset);
    const chunk = Buffer.from(pattern.subarray(offset % MiB, (offset % MiB) + length));
    if (length >= 4) chunk.writeUInt32BE(index, 0);
    yield chunk;
  }
}
function patternedSha256(sizeBytes: number): string {
  const hash = createHash('sha256');
  for (const chunk of patternedChunks(sizeBytes)) hash.update(chunk);
  return hash.digest('hex');
}
const patternedBody = (sizeBytes: number) => Readable.from(patternedChunks(sizeBytes), { objectMode: false });

async function versionsOf(key: string) {
  const output = await raw.send(new ListObjectVersionsCommand({ Bucket: s3.settings.bucket, Prefix: key }));
  return {
    versions: (output.Versions ?? []).filter((v) => v.Key === key),
    deleteMarkers: (output.DeleteMarkers ?? []).filter((m) => m.Key === key),
  };
}

async function pendingUploadsOf(key: string) {
  const output = await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.settings.bucket, Prefix: key }));
  return (output.Uploads ?? []).filter((u) => u.Key === key);
}

describe('keys', () => {
  it('puts the charm id before the rooted path', () => {
    assert.equal(store.keyFor('u1', '/a/b'), 'u1/a/b');
    assert.equal(store.keyFor('u1', '/'), 'u1/');
  });

  it('rejects paths that are not rooted and clean, and charm ids with a slash', () => {
    for (const path of ['a/b', '', '/a/', '/a//b', '/a/../b', '/./a']) {
      assert.throws(() => store.keyFor('u1', path), TypeError, path);
    }
    assert.throws(() => store.keyFor('u/1', '/a'), TypeError);
    assert.throws(() => store.keyFor('', '/a'), TypeError);
  });
});

/** Bytes a process has read so far (rchar of /proc/<pid>/io: sockets and files). */
function bytesReadBy(pid: number): number {
  return Number(/^rchar:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
}

describe('put, get and head', () => {
  it('round-trips bytes and metadata, and stores the object under <charmId><path>', async () => {
    const user = newUser();
    const bytes = Buffer.from('hello backup\n');
    await store.put(user, '/notes/today.txt', fileOf(bytes, 7, 0o600));

    const got = await store.get(user, '/notes/today.txt');
    assert.ok(got);
    assert.deepEqual(await readAll(got.body), bytes);
    assert.equal(got.path, '/notes/today.txt');
    assert.equal(got.size, bytes.length);
    assert.equal(got.sha256, sha256Of(bytes));
    assert.equal(got.mode, 0o600);
    assert.equal(got.version, 7);
    assert.ok(got.lastModified instanceof Date);

    const head = await store.head(user, '/notes/today.txt');
    const { body: _, ...headFields } = got;
    assert.deepEqual(head, headFields);

    assert.deepEqual(readFileSync(join(s3.bucketDir, user, 'notes', 'today.txt')), bytes);
  });

  it('round-trips an empty file', async () => {
    const user = newUser();
    await store.put(user, '/empty', fileOf(Buffer.alloc(0)));
    const got = await store.get(user, '/empty');
    assert.equal(got?.size, 0);
    assert.equal((await readAll(got.body)).length, 0);
  });

  it('overwrites keep the previous version in the versioned bucket', async () => {
    const user = newUser();
    await store.put(user, '/f', fileOf(Buffer.from('one'), 1));
    await store.put(user, '/f', fileOf(Buffer.from('two'), 2));
    const got = await store.get(user, '/f');
    assert.equal((await readAll(got?.body as Readable)).toString(), 'two');
    assert.equal(got?.version, 2);
    assert.equal((await versionsOf(store.keyFor(user, '/f'))).versions.length, 2);
  });

  it('answers undefined for a missing key', async () => {
    const user = newUser();
    assert.equal(await store.get(user, '/nothing/here'), undefined);
    assert.equal(await store.head(user, '/nothing/here'), undefined);
  });

  // Memory is measured by `npm run bench`; here the streaming itself is checked, which RSS samples cannot do reliably.
  it('streams a 40 MiB file to S3 in one PUT while reading it, and reads it back as a stream', async () => {
    const user = newUser();
    const sizeBytes = 40 * MiB;
    const heldBackAt = 36 * MiB; // most of the file, not all of it
    const sha256 = patternedSha256(sizeBytes);
    const key = store.keyFor(user, '/big.bin');
    const s3Pid = s3.process.pid as number;
    assert.ok(s3Pid > 0);
    const receivedBefore = bytesReadBy(s3Pid);
    let bytesRead = 0;
    let receivedBeforeEnd = 0;
    async function* heldBackBody() {
      for (const chunk of patternedChunks(sizeBytes)) {
        if (bytesRead === heldBackAt) {
          // The rest of the body is only given once S3 has received most of it: a put that buffered the whole
          // body (or a part of 16 MiB or more) before sending would never get there, and fail here instead of hanging.
          for (let attempt = 0; attempt < 600 && receivedBeforeEnd < 32 * MiB; attempt++) {
            receivedBeforeEnd = bytesReadBy(s3Pid) - receivedBefore;
            if (receivedBeforeEnd < 32 * MiB) await new Promise((resolve) => setTimeout(resolve, 100));
          }
          if (receivedBeforeEnd < 32 * MiB)
            throw new Error(
              `S3 had received ${receivedBeforeEnd} bytes after ${heldBackAt / MiB} MiB of the body`,
            );
        }
        bytesRead += chunk.length;
        yield chunk;
      }
    }
    await store.put(user, '/big.bin', {
      body: Readable.from(heldBackBody(), { objectMode: false }),
      size: sizeBytes,
      sha256,
      mode: 0o644,
      version: 3,
    });
    assert.ok(receivedBeforeEnd >= 32 * MiB, 'S3 received the bytes while the body was still being read');
    const head = await raw.send(
      new HeadObjectCommand({ Bucket: s3.settings.bucket, Key: key, ChecksumMode: 'ENABLED' }),
    );
    assert.doesNotMatch(head.ETag ?? '', /-\d+"$/, 'one PUT (no multipart ETag): the server joins no parts');
    // S3 checked the bytes against it (a PUT cut short is refused, not stored as a shorter object).
    assert.equal(
      head.ChecksumSHA256,
      Buffer.from(sha256, 'hex').toString('base64'),
      'the PUT named its sha256',
    );

    const got = await store.get(user, '/big.bin');
    assert.ok(got);
    assert.equal(got.size, sizeBytes);
    assert.equal(got.sha256, sha256);
    const hash = createHash('sha256');
    let readBytes = 0;
    let largestChunk = 0;
    let largestBuffered = 0;
    for await (const chunk of got.body) {
      hash.update(chunk as Buffer);
      readBytes += (chunk as Buffer).length;
      largestChunk = Math.max(largestChunk, (chunk as Buffer).length);
      largestBuffered = Math.max(largestBuffered, got.body.readableLength);
    }
    assert.equal(readBytes, sizeBytes);
    assert.equal(hash.digest('hex'), sha256);
    assert.ok(largestChunk <= MiB, `the body arrives in pieces (largest ${largestChunk} bytes), not whole`);
    assert.ok(
      largestBuffered <= MiB,
      `the stream holds little ahead of the reader (${largestBuffered} bytes)`,
    );
  });
});

describe('checksum and size checks', () => {
  async function assertUnchanged(user: string, path: string, bytes: Buffer) {
    const got = await store.get(user, path);
    assert.deepEqual(await readAll(got?.body as Readable), bytes);
    assert.equal(got?.version, 1);
    const key = store.keyFor(user, path);
    const { versions, deleteMarkers } = await versionsOf(key);
    assert.equal(versions.length, 1, 'no new version was completed');
    assert.equal(deleteMarkers.length, 0);
    assert.deepEqual(await pendingUploadsOf(key), [], 'no multipart upload left behind');
  }

  it('cuts a PUT whose bytes do not match sha256 before its last bytes, keeping the previous object', async () => {
    const user = newUser();
    const old = Buffer.from('previous contents');
    await store.put(user, '/f', fileOf(old));
    const sizeBytes = 20 * MiB; // most of it reaches S3 before the end is seen
    await assert.rejects(
      store.put(user, '/f', {
        body: patternedBody(sizeBytes),
        size: sizeBytes,
        sha256: 'ab'.repeat(32),
        mode: 0o644,
        version: 2,
      }),
      (err: Error) => err instanceof BackupChecksumError && /sha256/.test(err.message),
    );
    await assertUnchanged(user, '/f', old);
  });

  it('rejects a small body with the wrong sha256 without writing', async () => {
    const user = newUser();
    const old = Buffer.from('previous contents');
    await store.put(user, '/f', fileOf(old));
    const file = { ...fileOf(Buffer.from('new contents'), 2), sha256: sha256Of(Buffer.from('other')) };
    await assert.rejects(store.put(user, '/f', file), BackupChecksumError);
    await assertUnchanged(user, '/f', old);
  });

  it('rejects a body shorter or longer than the expected size', async () => {
    const user = newUser();
    const old = Buffer.from('previous contents');
    await store.put(user, '/f', fileOf(old));
    const bytes = Buffer.from('new contents');
    await assert.rejects(
      store.put(user, '/f', { ...fileOf(bytes, 2), size: bytes.length + 1 }),
      (err: Error) => err instanceof BackupChecksumError && /bytes/.test(err.message),
    );
    await assert.rejects(
      store.put(user, '/f', { ...fileOf(bytes, 2), size: bytes.length - 1 }),
      (err: Error) => err instanceof BackupChecksumError && /longer/.test(err.message),
    );
    const sizeBytes = 20 * MiB;
    await assert.rejects(
      store.put(user, '/f', {
        body: patternedBody(sizeBytes),
        size: sizeBytes - 1,
        sha256: patternedSha256(sizeBytes),
        mode: 0o644,
        version: 2,
      }),
      BackupChecksumError,
    );
    await assertUnchanged(user, '/f', old);
  });

  it('passes on an error of the body itself and writes nothing', async () => {
    const user = newUser();
    const failing = Readable.from(
      (async function* () {
        yield Buffer.from('partial');
        throw new Error('source went away');
      })(),
    );
    await assert.rejects(
      store.put(user, '/f', { body: failing, size: 100, sha256: 'ab'.repeat(32), mode: 0o644, version: 1 }),
      /source went away/,
    );
    assert.equal(await store.head(user, '/f'), undefined);
    assert.deepEqual((await versionsOf(store.keyFor(user, '/f'))).versions, []);
  });
});

describe('list, users and deleteWithin', () => {
  it('lists what is at or below path, not siblings that share its name as a prefix', async () => {
    const user = newUser();
    // Sorted by key, '/f!' comes between '/f' and '/f/…'; '/fg' after them (a listing by prefix '/f' sees all).
    for (const path of ['/a/x', '/a/y/z', '/a!', '/a-b', '/ab/c', '/b', '/f', '/f!', '/fg']) {
      await store.put(user, path, fileOf(Buffer.from(path)));
    }
    const paths = async (path?: string) => (await collect(store.list(user, path))).map((o) => o.path).sort();
    assert.deepEqual(await paths('/a'), ['/a/x', '/a/y/z']);
    assert.deepEqual(await paths('/a/y'), ['/a/y/z']);
    assert.deepEqual(await paths('/ab'), ['/ab/c']);
    assert.deepEqual(await paths('/f'), ['/f'], 'a file is at its own path');
    assert.deepEqual(await paths('/a/x'), ['/a/x']);
    assert.deepEqual(await paths('/c'), []);
    assert.deepEqual(await paths(), ['/a!', '/a-b', '/a/x', '/a/y/z', '/ab/c', '/b', '/f', '/f!', '/fg']);
    assert.deepEqual(await paths('/'), await paths());

    const [listed] = await collect(store.list(user, '/a/x'));
    assert.equal(listed?.size, '/a/x'.length);
    assert.ok(listed?.lastModified instanceof Date);
    assert.equal(listed?.sha256, undefined, 'the listing carries no metadata');
  });

  it('pages through more than 1000 objects and deletes them in batches', async () => {
    const user = newUser();
    const count = 1050;
    const paths = Array.from({ length: count }, (_, i) => `/many/${String(i).padStart(4, '0')}`);
    for (let i = 0; i < paths.length; i += 50) {
      await Promise.all(
        paths.slice(i, i + 50).map((path) => store.put(user, path, fileOf(Buffer.from(path)))),
      );
    }
    await store.put(user, '/other', fileOf(Buffer.from('other')));
    const listed = (await collect(store.list(user, '/many'))).map((o) => o.path);
    assert.deepEqual(listed.sort(), paths);

    assert.equal(await store.deleteWithin(user, '/many'), count);
    assert.deepEqual(await collect(store.list(user, '/many')), []);
    assert.deepEqual(
      (await collect(store.list(user))).map((o) => o.path),
      ['/other'],
    );
  });

  it('lists every user with objects', async () => {
    const users = [newUser(), newUser(), newUser()];
    for (const user of users) await store.put(user, '/deep/file', fileOf(Buffer.from(user)));
    const all = await collect(store.users());
    for (const user of users) assert.ok(all.includes(user), user);
    assert.equal(new Set(all).size, all.length, 'each user once');
    assert.ok(all.every((u) => !u.includes('/')));
  });

  it('deletes what is within path except what keep() keeps, leaving delete markers over the history', async () => {
    const user = newUser();
    for (const path of ['/d/keep.txt', '/d/drop.txt', '/d/sub/drop', '/d/sub/keep.txt', '/dx', '/d!']) {
      await store.put(user, path, fileOf(Buffer.from(path)));
    }
    const seen: string[] = [];
    const deleted = await store.deleteWithin(user, '/d', (path) => {
      seen.push(path);
      return path.endsWith('keep.txt');
    });
    assert.equal(deleted, 2);
    assert.deepEqual(seen.sort(), ['/d/drop.txt', '/d/keep.txt', '/d/sub/drop', '/d/sub/keep.txt']);
    assert.deepEqual((await collect(store.list(user))).map((o) => o.path).sort(), [
      '/d!',
      '/d/keep.txt',
      '/d/sub/keep.txt',
      '/dx',
    ]);
    assert.equal(await store.get(user, '/d/drop.txt'), undefined);
    assert.equal(await store.head(user, '/d/drop.txt'), undefined);
    const history = await versionsOf(store.keyFor(user, '/d/drop.txt'));
    assert.equal(history.versions.length, 1, 'the deleted version is still recoverable');
    assert.equal(history.deleteMarkers.length, 1);

    assert.equal(await store.deleteWithin(user, '/d/keep.txt'), 1, 'a file is within its own path');
    assert.equal(await store.deleteWithin(user, '/'), 3);
    assert.deepEqual(await collect(store.list(user)), []);
    assert.equal(await store.deleteWithin(user, '/'), 0);
  });

  it('on versitygw, cannot turn a (deleted) file into a directory or the reverse', async () => {
    const user = newUser();
    await store.put(user, '/was-file', fileOf(Buffer.from('file')));
    await store.deleteWithin(user, '/was-file');
    await assert.rejects(
      store.put(user, '/was-file/now-below', fileOf(Buffer.from('x'))),
      (err: Error) => err instanceof BackupConflictError && /ObjectParentIsFile/.test(err.message),
    );
    await store.put(user, '/dir/file', fileOf(Buffer.from('file')));
    await assert.rejects(
      store.put(user, '/dir', fileOf(Buffer.from('x'))),
      (err: Error) => err instanceof BackupConflictError && /ExistingObjectIsDirectory/.test(err.message),
    );
  });
});

describe('an unreachable S3', () => {
  it('throws BackupUnavailableError naming the endpoint, and works again after a restart', async () => {
    const user = newUser();
    await store.put(user, '/f', fileOf(Buffer.from('kept')));
    await s3.process.stop();
    try {
      const isUnavailable = (err: Error) => {
        assert.ok(err instanceof BackupUnavailableError, `${err.name}: ${err.message}`);
        assert.match(
          err.message,
          new RegExp(`S3 at ${s3.settings.endpoint} is unreachable \\(ECONNREFUSED\\)`),
        );
        assert.match(err.message, /check S3_ENDPOINT/);
        assert.ok(err.cause instanceof Error);
        return true;
      };
      await assert.rejects(store.get(user, '/f'), isUnavailable);
      await assert.rejects(store.head(user, '/f'), isUnavailable);
      await assert.rejects(collect(store.list(user)), isUnavailable);
      await assert.rejects(collect(store.users()), isUnavailable);
      await assert.rejects(store.deleteWithin(user, '/'), isUnavailable);
      const body = Readable.from([Buffer.from('new')]);
      await assert.rejects(store.put(user, '/f', { ...fileOf(Buffer.from('new')), body }), isUnavailable);
      assert.ok(body.destroyed, 'the body is released');
    } finally {
      await s3.process.start();
    }
    const got = await store.get(user, '/f');
    assert.equal((await readAll(got?.body as Readable)).toString(), 'kept');
  });

  it('throws BackupUnavailableError when S3 keeps answering 5xx', async () => {
    let requests = 0;
    const failing = createServer((_request, response) => {
      requests++;
      response.writeHead(503, { 'content-type': 'application/xml' });
      response.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>busy</Message></Error>',
      );
    });
    failing.listen(0, '127.0.0.1');
    await once(failing, 'listening');
    const endpoint = `http://127.0.0.1:${(failing.address() as AddressInfo).port}`;
    const busy = createBackupStore({ ...s3.settings, endpoint });
    try {
      await assert.rejects(busy.head(newUser(), '/f'), (err: Error) => {
        assert.ok(err instanceof BackupUnavailableError, `${err.name}: ${err.message}`);
        assert.match(err.message, new RegExp(`S3 at ${endpoint} failed with HTTP 503`));
        return true;
      });
      assert.ok(requests > 1, 'the SDK retried first');
      // A backup PUT (sent without the SDK) is not retried here: the job retries it.
      await assert.rejects(busy.put(newUser(), '/f', fileOf(Buffer.from('x'))), (err: Error) => {
        assert.ok(err instanceof BackupUnavailableError, `${err.name}: ${err.message}`);
        assert.match(err.message, /failed with HTTP 503 \(SlowDown\) on put/);
        return true;
      });
    } finally {
      busy.close();
      failing.close();
    }
  });
});
