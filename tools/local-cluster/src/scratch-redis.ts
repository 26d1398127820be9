// A real redis-server in a temp dir, for unit tests of packages that keep state in Redis.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { findBinaries } from './binaries.ts';
import { createRedis } from './redis.ts';

export async function startScratchRedis() {
  const runDir = mkdtempSync(join(tmpdir(), 'cring-redis-'));
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
