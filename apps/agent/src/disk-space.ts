import { statfs } from 'node:fs/promises';
import type { DiskSpace } from '@cring/agent-protocol';

export interface FreeSpaceReserve {
  /** Keep at least this share of the data volume free (0–100). */
  percent: number;
  /** And at least this many bytes (for small volumes, where a percentage is a few KiB). */
  bytes: number;
}

/**
 * Free space on the volume holding `dataDir` (what an unprivileged writer can still use), and whether it is under
 * the reserve: the larger of `percent` of the volume and `bytes`. A backend under it takes no new writes or repairs.
 */
export async function readDiskSpace(dataDir: string, reserve: FreeSpaceReserve): Promise<DiskSpace> {
  const stats = await statfs(dataDir, { bigint: true });
  const freeBytes = Number(stats.bavail * stats.bsize);
  const sizeBytes = Number(stats.blocks * stats.bsize);
  const reserveBytes = Math.max(Math.ceil((sizeBytes * reserve.percent) / 100), reserve.bytes);
  return {
    freeBytes,
    sizeBytes,
    freePercent: sizeBytes === 0 ? 0 : Math.round((freeBytes / sizeBytes) * 10_000) / 100,
    reserveBytes,
    underReserve: freeBytes < reserveBytes,
  };
}
