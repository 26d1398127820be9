import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const repoRoot = resolve(import.meta.dirname, '../../..');

/** Where `npm run dev` writes the running local cluster's topology; its `appEnv` holds the processes' settings. */
export const localClusterTopologyFile = join(repoRoot, '.cring', 'dev', 'cluster.json');

/** Settings that mean "this environment names a cluster": any of them set, and the environment is used as is. */
function namesACluster(env: NodeJS.ProcessEnv): boolean {
  return Object.keys(env).some(
    (key) =>
      (key.startsWith('CRING_') && key !== 'CRING_CACHE_DIR') ||
      key.startsWith('REDIS_') ||
      key.startsWith('S3_'),
  );
}

function isAlive(pid: unknown): boolean {
  if (typeof pid !== 'number' || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * The environment an operator command runs with: as given when it names a cluster; otherwise the running local
 * cluster's settings (from `npm run dev`) under it, said in one line to `say`. With neither, the environment as
 * given, so the command lists the missing settings as before.
 */
export function withLocalClusterSettings(
  env: NodeJS.ProcessEnv,
  say: (line: string) => void,
  topologyFile = localClusterTopologyFile,
): NodeJS.ProcessEnv {
  if (namesACluster(env) || !existsSync(topologyFile)) return env;
  const shown = relative(process.cwd(), topologyFile) || topologyFile;
  let topology: { launcherPid?: unknown; appEnv?: Record<string, string> };
  try {
    topology = JSON.parse(readFileSync(topologyFile, 'utf8'));
  } catch (err) {
    say(`ignoring ${shown}: not readable as JSON (${(err as Error).message})`);
    return env;
  }
  if (!topology.appEnv || !isAlive(topology.launcherPid)) {
    say(`ignoring ${shown}: its local cluster is not running (start it with \`npm run dev\`)`);
    return env;
  }
  say(`using the local cluster's settings from ${shown} (no CRING_*, REDIS_URL or S3_* in the environment)`);
  return { ...topology.appEnv, ...env };
}
