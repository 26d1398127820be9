import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { BackupChecksumError, type BackupStore } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import type { S3Job } from '@cring/jobs';
import { LockTimeoutError, type Manifest, type ManifestEntry } from '@cring/manifest';
import { createLogger } from '@cring/service-runtime';
import { UnrecoverableError } from 'bullmq';
import type { JobContext } from './job-context.ts';
import { backupToS3 } from './s3.ts';

const sha = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const acknowledged = Buffer.from('the acknowledged version\n');
const job: Extract<S3Job, { kind: 'backup' }> = {
  kind: 'backup',
  charmId: 'c1',
  path: '/a',
  version: 7,
  sha256: sha(acknowledged),
  size: acknowledged.length,
  mode: 420,
  sources: ['charm1', 'charm2'],
};
const entry: ManifestEntry & { path: string } = {
  kind: 'file',
  path: '/a',
  version: 7,
  sha256: job.sha256,
  size: job.size,
  mode: 420,
  holders: ['charm1', 'charm2'],
  atMs: 7,
};

/** Both sources already hold the bytes of the path's next write (or none, `missing`); `pathLocked`: a change holds the path's lock. */
function fakes(options: { pathLocked: boolean; missing?: boolean }) {
  const heldLocks: string[] = [];
  const lock = (path: string) => ({
    path,
    fence: 1,
    signal: new AbortController().signal,
    assertHeld: async () => {},
    release: async () => {
      heldLocks.splice(heldLocks.indexOf(path), 1);
    },
  });
  const manifest = {
    async lockPath(_charmId: string, path: string) {
      if (path === job.path && options.pathLocked) throw new LockTimeoutError(path, 0);
      heldLocks.push(path);
      return lock(path);
    },
    async lockPathReading(_charmId: string, path: string) {
      heldLocks.push(path);
      return { lock: lock(path), governing: entry };
    },
    async governing() {
      return entry;
    },
  } as unknown as Manifest;
  const store = {
    async put(_charmId: string, _path: string, object: { body: Readable; sha256: string }) {
      const received = Buffer.concat(await object.body.toArray());
      if (sha(received) !== object.sha256) throw new BackupChecksumError('other bytes');
    },
  } as unknown as BackupStore;
  const source = {
    async getFile() {
      if (options.missing) return undefined;
      return { body: Readable.from([Buffer.from('the next, uncommitted write\n')]), lastModified: '' };
    },
  } as unknown as BackendClient;
  const ctx: JobContext = {
    manifest,
    clientFor: () => source,
    auth: {} as JobContext['auth'],
    logger: createLogger({ name: 'test', level: 'silent', pretty: false }),
  };
  return { ctx, store, heldLocks };
}

describe('S3 backup jobs', () => {
  it('retry, not fail for good, while a change of the path is in flight and the sources hold other bytes or none', async () => {
    for (const missing of [false, true]) {
      const { ctx, store } = fakes({ pathLocked: true, missing });
      await assert.rejects(backupToS3(job, store, ctx), (err: Error) => {
        assert.ok(!(err instanceof UnrecoverableError), `a retry (${err.message})`);
        assert.match(err.message, /in flight, retrying/);
        return true;
      });
    }
  });

  it('fail for good when no change is in flight and every source holds other bytes (the healer repairs)', async () => {
    const { ctx, store, heldLocks } = fakes({ pathLocked: false });
    await assert.rejects(backupToS3(job, store, ctx), UnrecoverableError);
    assert.deepEqual(heldLocks, [], 'every lock taken was given back');
  });
});
