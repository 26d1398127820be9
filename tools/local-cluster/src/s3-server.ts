import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateBucketCommand,
  HeadBucketCommand,
  PutBucketVersioningCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { freePort } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';
import { acceptsTcp } from './probes.ts';

export interface S3Info {
  endpoint: string;
  bucket: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Objects are plain files under <rootDir>/<bucket>/<key> (the posix backend). */
  rootDir: string;
}

/** A real S3 server process (versitygw, posix backend, bucket versioning on) on 127.0.0.1. */
export async function createS3Server(options: { versitygwBin: string; runDir: string; bucket?: string }) {
  const port = await freePort();
  const rootDir = join(options.runDir, 's3', 'root');
  const versionsDir = join(options.runDir, 's3', 'versions');
  mkdirSync(rootDir, { recursive: true });
  mkdirSync(versionsDir, { recursive: true });
  const info: S3Info = {
    endpoint: `http://127.0.0.1:${port}`,
    bucket: options.bucket ?? 'charmed-ring',
    region: 'us-east-1',
    accessKeyId: 'cring-local',
    secretAccessKey: randomBytes(18).toString('base64url'),
    rootDir,
  };
  const process = new ManagedProcess({
    name: 's3 (versitygw)',
    command: options.versitygwBin,
    // Keep-alive is off unless asked for: every backup then paid a new TCP connection on both sides.
    args: [
      '--port',
      `127.0.0.1:${port}`,
      '--quiet',
      '--keep-alive',
      'posix',
      '--versioning-dir',
      versionsDir,
      rootDir,
    ],
    env: { ROOT_ACCESS_KEY: info.accessKeyId, ROOT_SECRET_KEY: info.secretAccessKey },
    logFile: join(options.runDir, 'logs', 's3.log'),
    ready: () => acceptsTcp(port),
  });
  return { info, process };
}

/** Creates the bucket if missing and turns versioning on, so an overwritten backup keeps its history. */
export async function ensureBucket(info: S3Info): Promise<void> {
  const client = new S3Client({
    endpoint: info.endpoint,
    region: info.region,
    forcePathStyle: true,
    credentials: { accessKeyId: info.accessKeyId, secretAccessKey: info.secretAccessKey },
  });
  try {
    try {
      await client.send(new HeadBucketCommand({ Bucket: info.bucket }));
    } catch {
      await client.send(new CreateBucketCommand({ Bucket: info.bucket }));
    }
    await client.send(
      new PutBucketVersioningCommand({ Bucket: info.bucket, VersioningConfiguration: { Status: 'Enabled' } }),
    );
  } finally {
    client.destroy();
  }
}
