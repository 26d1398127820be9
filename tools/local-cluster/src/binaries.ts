import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(import.meta.dirname, '../../..');

/** Where `scripts/install-deps.sh` puts the charm and versitygw binaries. */
export function cacheBinDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.CRING_CACHE_DIR ?? join(homedir(), '.cache', 'charmed-ring'), 'bin');
}

function requireBinary(path: string, what: string): string {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: run \`npm run setup\` first`);
  return path;
}

export interface Binaries {
  charm: string;
  versitygw: string;
  redisServer: string;
  node: string;
}

/** A Debian package's program, found on PATH as `scripts/install-deps.sh` checks for it. */
export function findOnPath(program: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      `${program} not found on PATH: run \`npm run setup\` first (installs the Debian package)`,
    );
  }
}

export function findBinaries(env: NodeJS.ProcessEnv = process.env): Binaries {
  const bin = cacheBinDir(env);
  const redisServer = findOnPath('redis-server');
  return {
    charm: requireBinary(join(bin, 'charm'), 'the charm binary'),
    versitygw: requireBinary(join(bin, 'versitygw'), 'the versitygw binary'),
    redisServer,
    // The Node 24 binary of the root `node` devDependency, also when the launcher runs outside npm scripts.
    node: process.execPath,
  };
}
