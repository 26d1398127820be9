// A real S3 server (versitygw, posix backend, versioned bucket) for this package's tests, in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findBinaries } from '@cring/local-cluster';
import { createS3Server, ensureBucket } from '../../../tools/local-cluster/src/s3-server.ts';
import type { S3Settings } from './backup-store.ts';

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
    async stop() {
      await server.process.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}
