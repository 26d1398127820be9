import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

const PROCESS_DIR = /^pid-(\d+)$/;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * The spool folder of this gateway process: `<base>/pid-<pid>`. The spool is local to the host, so a folder whose
 * process is gone is a killed gateway's leftovers (temp files of uploads it never finished): removed now, at
 * start, instead of never. Returns the folder to spool into.
 */
export async function prepareSpoolDir(
  base: string,
  pid = process.pid,
): Promise<{ dir: string; removed: string[] }> {
  // Only when missing: under Node's permission model a recursive mkdir also needs its parents to be writable.
  if (!existsSync(base)) await mkdir(base, { recursive: true, mode: 0o700 });
  const removed: string[] = [];
  for (const name of await readdir(base)) {
    const match = PROCESS_DIR.exec(name);
    // Loose upload files come from gateways that spooled into the base folder itself (before per-process folders).
    const leftover = match
      ? Number(match[1]) !== pid && !processAlive(Number(match[1]))
      : name.startsWith('upload-');
    if (!leftover) continue;
    await rm(join(base, name), { recursive: true, force: true });
    removed.push(name);
  }
  const dir = join(base, `pid-${pid}`);
  if (!existsSync(dir)) await mkdir(dir, { mode: 0o700 });
  return { dir, removed };
}
