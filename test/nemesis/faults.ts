/**
 * The nemeses that change the cluster's state or shape, not only one process's: Redis restored from a copy of
 * its AOF about a second older than the moment it died (the lost tail of `appendfsync everysec`, or a restore
 * from a backup), a ring change (a backend added the way the runbook says), and a whole host (a backend and the
 * agent beside it) killed together. Each injection returns the step that heals it.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { CharmBackend, Cluster } from '@cring/local-cluster';
import { createRing } from '@cring/ring';

export type ClusterFaultKind = 'redis-lost-tail' | 'ring-change' | 'kill-host';

export const CLUSTER_FAULT_KINDS: readonly ClusterFaultKind[] = [
  'redis-lost-tail',
  'ring-change',
  'kill-host',
];

/** How much acknowledged work Redis loses: the copy it restarts from is this much older than its death. */
export const LOST_TAIL_MS = 1000;

/** Ring changes stop adding backends here (two cores run every one of them). */
export const MAX_BACKENDS = 5;

export type Heal = () => Promise<void>;

export async function injectClusterFault(
  kind: ClusterFaultKind,
  context: { cluster: Cluster; backend: CharmBackend; log: (line: string) => void },
): Promise<Heal> {
  const { cluster, backend, log } = context;
  switch (kind) {
    case 'redis-lost-tail': {
      const older = copyRedis(cluster);
      await sleep(LOST_TAIL_MS);
      const lostBytes = await restoreRedis(cluster, older);
      log(`redis-lost-tail: ${lostBytes} bytes of AOF written after the copy are lost`);
      return () => cluster.redis.process.start();
    }
    case 'kill-host': {
      const agent = cluster.agents[cluster.backends.indexOf(backend)];
      if (!agent) throw new Error(`no agent beside ${backend.info.name}`);
      log(`kill-host: ${backend.info.name} and its agent`);
      await Promise.all([backend.process.killNow(), agent.killNow()]);
      return async () => {
        await backend.process.start();
        await agent.start();
      };
    }
    case 'ring-change': {
      if (cluster.backends.length >= MAX_BACKENDS) {
        log(`ring-change: not done, the ring already has ${cluster.backends.length} backends`);
        return async () => {};
      }
      const added = await cluster.addBackend();
      log(`ring-change: ${added.info.name} joined; gateway and replicator restarted with the new ring`);
      return async () => {};
    }
  }
}

/** The user's owners under the ring the cluster runs now (the processes' default replication factor, 3). */
export function ownersOf(cluster: Cluster, charmId: string): string[] {
  const ring = createRing(cluster.backends.map((b) => b.info.name));
  return ring.preferenceList(charmId, Number(cluster.appEnv.CRING_REPLICATION_FACTOR ?? 3));
}

const aofDirOf = (cluster: Cluster) => join(cluster.redis.dir, 'appendonlydir');

/** A copy of the running Redis's AOF, as a backup taken now would be. */
export function copyRedis(cluster: Cluster): { dir: string; bytes: number } {
  const dir = join(cluster.redis.dir, `appendonlydir.older-${Date.now()}`);
  return { dir, bytes: copyAof(aofDirOf(cluster), dir) };
}

/**
 * kill -9 Redis and put the older copy in place of its AOF (the caller starts it again). Returns how many bytes
 * of AOF written since the copy are lost (meaningless if Redis rewrote its AOF in between).
 */
export async function restoreRedis(cluster: Cluster, older: { dir: string; bytes: number }): Promise<number> {
  await cluster.redis.process.killNow();
  const lostBytes = aofBytes(aofDirOf(cluster)) - older.bytes;
  rmSync(aofDirOf(cluster), { recursive: true, force: true });
  renameSync(older.dir, aofDirOf(cluster));
  return lostBytes;
}

/**
 * Copies Redis 7's multi-part AOF while Redis runs: the manifest first, then the files it names (appended to
 * since, which only makes the copy newer). A rewrite between the two removes a named file: copy again.
 * Returns the bytes copied.
 */
function copyAof(aofDir: string, copyDir: string): number {
  for (let attempt = 0; attempt < 5; attempt++) {
    rmSync(copyDir, { recursive: true, force: true });
    mkdirSync(copyDir, { recursive: true });
    const manifestName = 'appendonly.aof.manifest';
    copyFileSync(join(aofDir, manifestName), join(copyDir, manifestName));
    const named = aofFiles(join(copyDir, manifestName));
    try {
      for (const name of named) copyFileSync(join(aofDir, name), join(copyDir, name));
      return named.reduce((sum, name) => sum + statSync(join(copyDir, name)).size, 0);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }
  throw new Error(`the AOF in ${aofDir} kept changing (rewrites) while it was copied`);
}

function aofBytes(aofDir: string): number {
  const manifest = join(aofDir, 'appendonly.aof.manifest');
  if (!existsSync(manifest)) return 0;
  return aofFiles(manifest).reduce((sum, name) => sum + statSync(join(aofDir, name)).size, 0);
}

/** The base and incremental files a manifest names (`file <name> seq <n> type b|i|h`); history files are not loaded. */
function aofFiles(manifestFile: string): string[] {
  return readFileSync(manifestFile, 'utf8')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((words) => words[0] === 'file' && words.at(-1) !== 'h')
    .map((words) => words[1] as string);
}
