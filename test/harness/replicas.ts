import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackupStore } from '@cring/backup-store';
import type { Cluster } from '@cring/local-cluster';
import { createManifest } from '@cring/manifest';
import { Redis } from 'ioredis';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Every file under root, as rooted path → sha256 of its bytes. */
function hashTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  if (!existsSync(root)) return out;
  const walk = (dir: string, prefix: string) => {
    for (const name of readdirSync(dir)) {
      const full = join(dir, name);
      if (statSync(full).isDirectory()) walk(full, `${prefix}/${name}`);
      else out.set(`${prefix}/${name}`, sha256(readFileSync(full)));
    }
  };
  walk(root, '');
  return out;
}

/** What one backend stores for a user: path → sha256, read from its data dir. */
export function filesOnBackend(cluster: Cluster, backendIndex: number, charmId: string): Map<string, string> {
  const backend = cluster.backends[backendIndex];
  if (!backend) throw new Error(`no backend #${backendIndex}`);
  return hashTree(join(backend.info.dataDir, 'files', charmId));
}

/** A client of the cluster's backup bucket (close it when done). */
export function clusterBackupStore(cluster: Cluster) {
  const { endpoint, region, bucket, accessKeyId, secretAccessKey } = cluster.s3.info;
  return createBackupStore({ endpoint, region, bucket, accessKeyId, secretAccessKey, forcePathStyle: true });
}

/** What the S3 bucket holds for a user, read through the S3 API (deleted objects keep files on disk there). */
export async function objectsInS3(cluster: Cluster, charmId: string): Promise<Map<string, string>> {
  const store = clusterBackupStore(cluster);
  try {
    const out = new Map<string, string>();
    for await (const object of store.list(charmId)) {
      const found = await store.get(charmId, object.path);
      if (found)
        out.set(object.path, sha256(Buffer.from(await found.body.toArray().then((c) => Buffer.concat(c)))));
    }
    return out;
  } finally {
    store.close();
  }
}

/** A Redis client and manifest view on the cluster's Redis, closed with the test. */
export function clusterState(cluster: Cluster) {
  const redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // the cluster may stop before this client closes; commands still fail loudly
  const manifest = createManifest(redis);
  return {
    redis,
    manifest,
    /**
     * Waits until no job is pending for the user (every owner and S3 applied every change), but those for the
     * targets in `except` (a backend kept down, whose jobs retry).
     */
    async waitForDrain(charmId: string, timeoutMs = 90_000, except: readonly string[] = []): Promise<void> {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const pending = await manifest.pendingJobs(charmId);
        if (pending.every((job) => except.includes(job.backend))) return;
        await sleep(200);
      }
      throw new Error(
        `jobs still pending after ${timeoutMs} ms: ${JSON.stringify(await manifest.pendingJobs(charmId))}`,
      );
    },
    close: () => redis.disconnect(),
  };
}
