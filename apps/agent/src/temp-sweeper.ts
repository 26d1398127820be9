// charm serve v0.12.6 parses an upload with Go's mime/multipart, which spills a file part above 32 MiB into
// os.CreateTemp($TMPDIR, "multipart-") and never removes it: a busy backend fills its disk with them. The sweeper
// removes only those files, and only once no upload can still use them:
//
// | seen in the server's TMPDIR                          | done   | why it is safe                                  |
// | ---------------------------------------------------- | ------ | ----------------------------------------------- |
// | a name other than `multipart-<digits>`               | kept   | not ours: never touched                         |
// | not a regular file (directory, symlink, socket)      | kept   | Go only creates regular files there             |
// | changed (mtime or ctime) less than `minAgeMs` ago    | kept   | an upload is still writing or about to read it  |
// | held open by a process the agent can see (/proc)     | kept   | the server is still copying it into storage     |
// | otherwise                                            | removed| the request that made it has finished           |
import { lstat, readdir, readlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '@cring/service-runtime';

/** The names Go's os.CreateTemp gives mime/multipart's temp files: the prefix and a decimal random number. */
export const CHARM_MULTIPART_TEMP = /^multipart-\d+$/;

export interface SweepResult {
  /** Files removed and their bytes. */
  files: number;
  bytes: number;
  /** Matching files left for later (too young, or still open). */
  kept: number;
  /** Bytes of matching files still there after the sweep. */
  remainingBytes: number;
}

export interface TempSweeperOptions {
  dir: string;
  minAgeMs: number;
  intervalMs: number;
  logger: Logger;
  now?: () => number;
  /** Paths some process holds open right now (by default read from /proc; empty where it cannot be read). */
  openFiles?: () => Promise<ReadonlySet<string>>;
  onSweep?: (result: SweepResult) => void;
  onError?: (err: unknown) => void;
}

export interface TempSweeper {
  sweepOnce(): Promise<SweepResult>;
  /** Sweeps every intervalMs (unref'd); a slow sweep delays the next instead of overlapping it. */
  start(): void;
  /** Safe to call twice; waits for a sweep in flight. */
  stop(): Promise<void>;
}

/** Every file any process on this host (or PID namespace) has open, from /proc/<pid>/fd. */
export async function openFilesFromProc(): Promise<ReadonlySet<string>> {
  const open = new Set<string>();
  let pids: string[];
  try {
    pids = (await readdir('/proc')).filter((name) => /^\d+$/.test(name));
  } catch {
    return open;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = await readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      try {
        open.add(await readlink(`/proc/${pid}/fd/${fd}`));
      } catch {
        // closed meanwhile
      }
    }
  }
  return open;
}

export function createTempSweeper(options: TempSweeperOptions): TempSweeper {
  const { dir, minAgeMs, intervalMs } = options;
  const now = options.now ?? Date.now;
  const openFiles = options.openFiles ?? openFilesFromProc;
  const log = options.logger.child({ component: 'temp-sweeper' });
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<SweepResult> | undefined;
  let stopped = false;

  async function sweep(): Promise<SweepResult> {
    const result: SweepResult = { files: 0, bytes: 0, kept: 0, remainingBytes: 0 };
    const names = (await readdir(dir)).filter((name) => CHARM_MULTIPART_TEMP.test(name));
    const old: { path: string; size: number }[] = [];
    for (const name of names) {
      const path = join(dir, name);
      const stat = await lstat(path).catch(() => undefined);
      if (!stat?.isFile()) continue;
      const changedMs = Math.max(stat.mtimeMs, stat.ctimeMs);
      if (now() - changedMs < minAgeMs) {
        result.kept++;
        result.remainingBytes += stat.size;
      } else old.push({ path, size: stat.size });
    }
    const open = old.length > 0 ? await openFiles() : new Set<string>();
    for (const file of old) {
      if (open.has(file.path)) {
        result.kept++;
        result.remainingBytes += file.size;
        continue;
      }
      try {
        await unlink(file.path);
        result.files++;
        result.bytes += file.size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    if (result.files > 0) log.info({ dir, ...result }, 'swept leaked upload temp files');
    options.onSweep?.(result);
    return result;
  }

  function sweepOnce(): Promise<SweepResult> {
    inFlight ??= sweep().finally(() => {
      inFlight = undefined;
    });
    return inFlight;
  }

  return {
    sweepOnce,
    start() {
      if (timer || stopped) return;
      timer = setInterval(() => {
        if (!inFlight)
          sweepOnce().catch((err: unknown) => {
            log.warn({ err, dir }, 'temp sweep failed; retrying next interval');
            options.onError?.(err);
          });
      }, intervalMs);
      timer.unref();
    },
    async stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      await inFlight?.catch(() => undefined);
    },
  };
}
