import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';

/** Spool files carry their gateway's process id: `upload-<pid>-<random>`. */
export const spoolFilePrefix = (pid = process.pid) => `upload-${pid}-`;
const SPOOL_FILE = /^upload-(\d+)-/;

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}

/**
 * Prepares the spool folder at start. The spool is local to the host, so a spool file whose process is gone is
 * a killed gateway's leftover (an upload it never finished): removed now instead of never. So is one that names
 * this very process id: at start this process has spooled nothing yet, so it is a previous run's (in a container
 * the gateway always gets the same pid). Files of live gateways sharing the folder are kept. Returns the names
 * removed.
 */
export async function prepareSpoolDir(dir: string, pid = process.pid): Promise<{ removed: string[] }> {
  // Only when missing: under Node's permission model a recursive mkdir also needs its parents to be writable.
  if (!existsSync(dir)) await mkdir(dir, { recursive: true, mode: 0o700 });
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    const owner = SPOOL_FILE.exec(name)?.[1];
    if (owner === undefined || (Number(owner) !== pid && processAlive(Number(owner)))) continue;
    await rm(join(dir, name), { force: true });
    removed.push(name);
  }
  return { removed };
}
