// A real S3 server (versitygw, posix backend, versioned bucket) for this package's tests, in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
import { S3Client } from '@aws-sdk/client-s3';
import { findBinaries } from '@cring/local-cluster';
import { createS3Server, ensureBucket } from '../../../tools/local-cluster/src/s3-server.ts';
import { type BackupStore, createBackupStore, type S3Settings } from './backup-store.ts';

export async function startTestS3() {
  const runDir = mkdtempSync(join(tmpdir(), 'cring-backup-store-'));
  const server = await createS3Server({ versitygwBin: findBinaries().versitygw, runDir });
  await server.process.start();
  await ensureBucket(server.info);
  const settings: S3Settings = {
    endpoint: server.info.endpoint,
    region: server.info.region,
    bucket: server.info.bucket,
    accessKeyId: server.info.accessKeyId,
    secretAccessKey: server.info.secretAccessKey,
    forcePathStyle: true,
  };
  return {
    settings,
    /** Objects are plain files under this directory (`<key>` relative to it). */
    bucketDir: join(server.info.rootDir, server.info.bucket),
    process: server.process,
    /** A plain SDK client of the server, for what the store does not do (close it when done). */
    rawClient: () =>
      new S3Client({
        endpoint: settings.endpoint,
        region: settings.region,
        forcePathStyle: true,
        credentials: { accessKeyId: settings.accessKeyId, secretAccessKey: settings.secretAccessKey },
      }),
    async stop() {
      await server.process.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}

/** A test S3 for the whole file: started before its tests and stopped after them, with a store and a raw client. */
export function useTestS3() {
  const used = {} as { s3: Awaited<ReturnType<typeof startTestS3>>; store: BackupStore; raw: S3Client };
  before(async () => {
    used.s3 = await startTestS3();
    used.store = createBackupStore(used.s3.settings);
    used.raw = used.s3.rawClient();
  });
  after(async () => {
    used.store.close();
    used.raw.destroy();
    await used.s3.stop();
  });
  return used;
}
