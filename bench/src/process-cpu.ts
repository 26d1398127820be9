import { readFileSync } from 'node:fs';

// USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every Linux this runs on.
const TICKS_PER_SECOND = 100;

/** CPU seconds (user + system, all threads) a process has used so far; undefined once it is gone. */
export function cpuSecondsOf(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are fields 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
}

/** CPU seconds each named process used between start and stop(). */
export function meterCpu(processes: Record<string, number>): { stop(): Record<string, number> } {
  const before = new Map(Object.entries(processes).map(([name, pid]) => [name, cpuSecondsOf(pid)]));
  return {
    stop() {
      const out: Record<string, number> = {};
      for (const [name, pid] of Object.entries(processes)) {
        const start = before.get(name);
        const end = cpuSecondsOf(pid);
        if (start !== undefined && end !== undefined) out[name] = Math.round((end - start) * 100) / 100;
      }
      return out;
    },
  };
}
