import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { type Cluster, type ClusterOptions, repoRoot, startCluster } from '@cring/local-cluster';

/**
 * Starts a cluster in its own folder and ports for one test, stopped when the test ends. The folder (with every
 * process's log) is deleted when the test passed and kept, with its path printed, when it failed.
 */
export async function useCluster(
  t: TestContext,
  options: Omit<ClusterOptions, 'runDir'> = {},
): Promise<Cluster> {
  const slug = t.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 40);
  const runDir = join(repoRoot, '.cring', 'test', `${slug}-${randomBytes(3).toString('hex')}`);
  const cluster = await startCluster({ ...options, runDir, logLevel: options.logLevel ?? 'debug' });
  t.after(async () => {
    await cluster.stop();
    if ((t as TestContext & { passed?: boolean }).passed) rmSync(runDir, { recursive: true, force: true });
    else console.error(`kept the failed run's folder and logs: ${runDir}`);
  });
  return cluster;
}
