import { readFileSync } from 'node:fs';

/** Bytes a process has had written to storage so far (write_bytes of /proc/<pid>/io: page-cache pages it dirtied). */
export function storageWriteBytesOf(pid: number): number | undefined {
  try {
    return Number(/^write_bytes:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1] ?? Number.NaN);
  } catch {
    return undefined;
  }
}

/** Dirty + Writeback of /proc/meminfo, bytes: data written to the page cache that is not on the disk yet. */
export function unwrittenBytes(): number {
  const meminfo = readFileSync('/proc/meminfo', 'utf8');
  const kib = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(meminfo)?.[1] ?? 0);
  return (kib('Dirty') + kib('Writeback')) * 1024;
}

/**
 * What a stretch of work asked of the disk: the bytes each process dirtied, and the machine's peak of unwritten
 * bytes (sampled every `everyMs`). Past the kernel's dirty limit (vm.dirty_ratio of available memory) writers
 * are throttled to the disk's own speed, so a peak near it means the disk, not the code, set the pace.
 */
export function meterStorage(processes: Record<string, number>, everyMs = 100) {
  const before = new Map(Object.entries(processes).map(([name, pid]) => [name, storageWriteBytesOf(pid)]));
  let peak = unwrittenBytes();
  const timer = setInterval(() => {
    peak = Math.max(peak, unwrittenBytes());
  }, everyMs);
  return {
    stop(): { writtenBytes: Record<string, number>; peakUnwrittenBytes: number } {
      clearInterval(timer);
      const writtenBytes: Record<string, number> = {};
      for (const [name, pid] of Object.entries(processes)) {
        const start = before.get(name);
        const end = storageWriteBytesOf(pid);
        if (start !== undefined && end !== undefined && end > start) writtenBytes[name] = end - start;
      }
      return { writtenBytes, peakUnwrittenBytes: Math.max(peak, unwrittenBytes()) };
    },
  };
}
