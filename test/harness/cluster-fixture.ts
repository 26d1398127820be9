import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
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
    const passed = (t as TestContext & { passed?: boolean }).passed;
    // Read before the stop, whose own noise (Redis going away) would push the cause out.
    const notable = passed ? '' : notableLogLines(join(runDir, 'logs'));
    await cluster.stop();
    if (passed) rmSync(runDir, { recursive: true, force: true });
    else {
      console.error(`kept the failed run's folder and logs: ${runDir}`);
      // CI keeps only the output: the warnings and errors of the central processes say what happened.
      console.error(notable);
    }
  });
  return cluster;
}

const CENTRAL_LOG = /^(gateway|replicator|healer)[^/]*\.log$/;
const LINES_PER_LOG = 20;
const WARN_LEVEL = 40; // pino's warn

/** The last warnings, errors, refusals and non-JSON lines (a crash's stack) of each central process's log. */
function notableLogLines(logDir: string): string {
  if (!existsSync(logDir)) return '';
  const parts: string[] = [];
  for (const name of readdirSync(logDir).filter((n) => CENTRAL_LOG.test(n))) {
    const notable = readFileSync(join(logDir, name), 'utf8')
      .split('\n')
      .filter((line) => {
        if (line.trim() === '') return false;
        if (!line.startsWith('{')) return true;
        try {
          const entry = JSON.parse(line) as { level?: number; msg?: string };
          return (entry.level ?? 0) >= WARN_LEVEL || entry.msg === 'request refused'; // 4xx are info
        } catch {
          return true;
        }
      })
      .slice(-LINES_PER_LOG);
    if (notable.length > 0) parts.push(`--- ${name}: last warnings and errors\n${notable.join('\n')}`);
  }
  return parts.join('\n');
}
