import type { Manifest } from './manifest.ts';

/** Tests: commits a write the way a writer does, under the path's lock. */
export async function commitLocked(
  manifest: Manifest,
  charmId: string,
  path: string,
  file: Parameters<Manifest['commitWrite']>[2],
): Promise<number> {
  const lock = await manifest.lockPath(charmId, path);
  try {
    return await manifest.commitWrite(charmId, path, file, lock);
  } finally {
    await lock.release();
  }
}

/** Tests: commits a delete under the path's lock. */
export async function deleteLocked(
  manifest: Manifest,
  charmId: string,
  path: string,
  holders: string[],
  atMs?: number,
): Promise<number> {
  const lock = await manifest.lockPath(charmId, path);
  try {
    return await manifest.commitDelete(charmId, path, holders, lock, atMs);
  } finally {
    await lock.release();
  }
}
