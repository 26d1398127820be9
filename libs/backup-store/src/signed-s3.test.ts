import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createSignedS3, S3AnswerError } from './signed-s3.ts';
import { useTestS3 } from './test-s3.ts';

const sha256Of = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const used = useTestS3();

function putterFor(settings: (typeof used)['s3']['settings']) {
  return createSignedS3({ ...settings, requestTimeoutMs: 5_000, connectionTimeoutMs: 5_000 });
}

describe('PutObject signed here (SigV4)', () => {
  it('stores a key with spaces, non-ASCII and reserved characters, metadata included', async () => {
    const putter = putterFor(used.s3.settings);
    try {
      const user = randomUUID();
      const path = "/dir with space/ü+(1)!*'~;=&$,@.txt";
      const bytes = Buffer.from('bytes under an awkward name');
      await putter.putObject({
        key: used.store.keyFor(user, path),
        body: Readable.from([bytes]),
        size: bytes.length,
        sha256: sha256Of(bytes),
        contentType: 'application/octet-stream',
        metadata: { sha256: sha256Of(bytes), mode: '420', version: '3' },
        signal: new AbortController().signal,
      });
      const got = await used.store.head(user, path);
      assert.equal(got?.size, bytes.length);
      assert.equal(got?.sha256, sha256Of(bytes));
      assert.equal(got?.version, 3);
      assert.deepEqual(readFileSync(join(used.s3.bucketDir, user, ...path.split('/').slice(1))), bytes);
    } finally {
      putter.close();
    }
  });

  it('is refused by S3 when the bytes are not the signed sha256, storing nothing', async () => {
    const putter = putterFor(used.s3.settings);
    try {
      const user = randomUUID();
      const bytes = Buffer.from('what is sent');
      await assert.rejects(
        putter.putObject({
          key: used.store.keyFor(user, '/f'),
          body: Readable.from([bytes]),
          size: bytes.length,
          sha256: sha256Of(Buffer.from('what was promised')),
          contentType: 'application/octet-stream',
          metadata: {},
          signal: new AbortController().signal,
        }),
        (err: unknown) =>
          err instanceof S3AnswerError && err.$metadata.httpStatusCode === 400 && err.name !== '',
      );
      assert.equal(await used.store.head(user, '/f'), undefined);
    } finally {
      putter.close();
    }
  });

  it('is refused by S3 when signed with another secret', async () => {
    const putter = putterFor({ ...used.s3.settings, secretAccessKey: 'not-the-secret' });
    try {
      const bytes = Buffer.from('x');
      await assert.rejects(
        putter.putObject({
          key: used.store.keyFor(randomUUID(), '/f'),
          body: Readable.from([bytes]),
          size: 1,
          sha256: sha256Of(bytes),
          contentType: 'application/octet-stream',
          metadata: {},
          signal: new AbortController().signal,
        }),
        (err: unknown) => err instanceof S3AnswerError && err.$metadata.httpStatusCode === 403,
      );
    } finally {
      putter.close();
    }
  });
});
