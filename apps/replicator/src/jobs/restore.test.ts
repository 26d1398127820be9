import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import type { BackupStore } from '@cring/backup-store';
import { type BackendClient, ChecksumMismatchError } from '@cring/charm';
import type { RestoreJob } from '@cring/jobs';
import type { Manifest, ManifestEntry } from '@cring/manifest';
import { createLogger } from '@cring/service-runtime';
import { UnrecoverableError } from 'bullmq';
import type { JobContext } from './job-context.ts';
import { restoreFromS3 } from './restore.ts';

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const bytes = Buffer.from('the backed-up version\n');
const job: RestoreJob = {
  kind: 'restore',
  charmId: 'c1',
  path: '/a/b',
  version: 7,
  sha256: sha(bytes),
  size: bytes.length,
  mode: 420,
};

function fakes(options: {
  entry?: (ManifestEntry & { path: string }) | undefined;
  object?: { bytes: Buffer; sha256?: string } | undefined;
}) {
  const holdersAdded: string[] = [];
  const locks: string[] = [];
  const written: Buffer[] = [];
  const manifest = {
    async lockPathReading(_charmId: string, path: string) {
      locks.push(path);
      // A lock that stays held: path, fence and signal as the real one has them.
      const lock = {
        path,
        fence: 1,
        signal: new AbortController().signal,
        assertHeld: async () => {},
        release: async () => {},
      };
      return { lock, governing: options.entry };
    },
    async addHolder(_c: string, _p: string, version: number, backend: string) {
      holdersAdded.push(`${backend}@${version}`);
      return true;
    },
  } as unknown as Manifest;
  const store = {
    async get() {
      if (!options.object) return undefined;
      return {
        path: job.path,
        size: options.object.bytes.length,
        sha256: options.object.sha256,
        body: Readable.from([options.object.bytes]),
      };
    },
  } as unknown as BackupStore;
  const target = {
    backend: { name: 'charm2', httpUrl: 'http://x', sshHost: 'x', sshPort: 1 },
    async putFile(
      _charmId: string,
      path: string,
      file: { body: Readable; size: number; expectSha256?: string },
    ): Promise<void> {
      const received = Buffer.concat(await file.body.toArray());
      if (received.length !== file.size || sha(received) !== file.expectSha256) {
        throw new ChecksumMismatchError({
          backend: 'charm2',
          path,
          expectedSize: file.size,
          actualSize: received.length,
          expectedSha256: file.expectSha256 as string,
          actualSha256: sha(received),
        });
      }
      written.push(received);
    },
  } as unknown as BackendClient;
  const ctx: JobContext = {
    manifest,
    clientFor: () => undefined,
    auth: {} as JobContext['auth'],
    logger: createLogger({ name: 'test', level: 'silent', pretty: false }),
  };
  return { ctx, store, target, holdersAdded, locks, written };
}

const current = {
  kind: 'file' as const,
  path: '/a/b',
  version: 7,
  sha256: job.sha256,
  size: job.size,
  mode: 420,
  holders: [],
  atMs: 1,
};

describe('restoreFromS3', () => {
  it('copies the object to the target under the path lock and records the holder', async () => {
    const f = fakes({ entry: current, object: { bytes, sha256: job.sha256 } });
    const outcome = await restoreFromS3(job, f.target, f.store, f.ctx);
    assert.equal(outcome.outcome, 'applied');
    assert.deepEqual(f.written, [bytes]);
    assert.deepEqual(f.holdersAdded, ['charm2@7']);
    assert.deepEqual(f.locks, ['/a/b']);
  });

  it('drops the job when a newer write or a delete superseded the version', async () => {
    for (const entry of [
      { ...current, version: 8 },
      { kind: 'tombstone' as const, path: '/a', version: 9, holders: [], atMs: 1 },
      undefined,
      // Redis lost its tail and the counter restarted lower: the same version number names other bytes now.
      { ...current, sha256: 'f'.repeat(64) },
    ]) {
      const f = fakes({ entry, object: { bytes, sha256: job.sha256 } });
      const outcome = await restoreFromS3(job, f.target, f.store, f.ctx);
      assert.equal(outcome.outcome, 'dropped');
      assert.deepEqual(f.written, []);
      assert.deepEqual(f.holdersAdded, []);
    }
  });

  it('fails for good, writing nothing, when the backup is missing or holds other bytes', async () => {
    const other = Buffer.from('another version of the file');
    const cases = [
      undefined,
      { bytes: other, sha256: sha(other) },
      // metadata that lies: the bytes are checked while streaming
      { bytes: other, sha256: job.sha256 },
    ];
    for (const object of cases) {
      const f = fakes({ entry: current, object });
      await assert.rejects(restoreFromS3(job, f.target, f.store, f.ctx), UnrecoverableError);
      assert.deepEqual(f.written, []);
      assert.deepEqual(f.holdersAdded, []);
    }
  });
});
