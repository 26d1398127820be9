// A real redis-server for this package's tests, on a free port in a temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRedis, findBinaries } from '@cring/local-cluster';
import { Redis } from 'ioredis';

export async function startTestRedis() {
  const runDir = mkdtempSync(join(tmpdir(), 'cring-accounts-redis-'));
  const server = await createRedis({ redisBin: findBinaries().redisServer, runDir });
  await server.process.start();
  const redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  return {
    redis,
    url: server.url,
    async stop() {
      redis.disconnect();
      await server.process.stop();
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}
