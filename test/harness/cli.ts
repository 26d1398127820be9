import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { type Cluster, repoRoot } from '@cring/local-cluster';

/** Runs one of the project's command lines (e.g. apps/cring/src/cli.ts) with the cluster's environment. */
export function runCli(
  cluster: Cluster,
  script: string,
  args: string[],
  options: { timeoutMs?: number; env?: Record<string, string> } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...cluster.central.nodeArgs, join(repoRoot, script), ...args],
      {
        env: { ...process.env, ...cluster.appEnv, ...cluster.central.env, ...options.env },
        timeout: options.timeoutMs ?? 300_000,
        maxBuffer: 64 << 20,
      },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}
