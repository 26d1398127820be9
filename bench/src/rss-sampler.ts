import { readFileSync, writeFileSync } from 'node:fs';

const KIB = 1024;

export interface MemoryReading {
  /** Resident set size now, bytes. */
  rssBytes: number;
  /** The kernel's high-water mark of the resident set (since start or the last reset), bytes. */
  hwmBytes: number;
}

/** VmRSS and VmHWM of a process from /proc/<pid>/status; undefined once it is gone. */
export function readMemory(pid: number): MemoryReading | undefined {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
  return { rssBytes: kib('VmRSS') * KIB, hwmBytes: kib('VmHWM') * KIB };
}

/** Resets the kernel's VmHWM to the current RSS (`echo 5 > clear_refs`); false where that is not allowed. */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

export interface MemoryPeak {
  /** Highest VmRSS seen by the sampler, bytes. */
  sampledPeakBytes: number;
  /** VmHWM at the end (covers spikes between samples when the reset worked), bytes. */
  hwmBytes: number;
  /** Whether VmHWM was reset at the start, i.e. whether hwmBytes belongs to this window only. */
  hwmReset: boolean;
  samples: number;
}

/** Samples a process's memory every intervalMs until stop(); the window's VmHWM starts from a reset. */
export function sampleMemory(pid: number, intervalMs = 50): { stop(): MemoryPeak } {
  const hwmReset = resetPeak(pid);
  let sampledPeakBytes = 0;
  let samples = 0;
  const take = () => {
    const reading = readMemory(pid);
    if (!reading) return;
    samples++;
    sampledPeakBytes = Math.max(sampledPeakBytes, reading.rssBytes);
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return { sampledPeakBytes, hwmBytes: readMemory(pid)?.hwmBytes ?? Number.NaN, hwmReset, samples };
    },
  };
}
