import type { Readable } from 'node:stream';
import type { FileEntry, ManifestEntry, PathLock } from '@cring/manifest';
import { UnrecoverableError } from 'bullmq';
import { type JobContext, type JobOutcome, LOCK_WAIT_MS } from './job-context.ts';

interface VersionRef {
  charmId: string;
  path: string;
  version: number;
  sha256?: string;
}

/**
 * The path's file entry when `job.version` still governs it, else the reason the job is dropped. The bytes must
 * be the job's too: after Redis lost its tail the user's version counter restarts lower, so an old job's version
 * number can name a newer write, and it must not copy its old bytes over that write.
 */
export function stillCurrent(
  job: VersionRef,
  entry: (ManifestEntry & { path: string }) | undefined,
): { entry: FileEntry } | { dropped: JobOutcome } {
  if (
    entry?.kind !== 'file' ||
    entry.path !== job.path ||
    entry.version !== job.version ||
    (job.sha256 !== undefined && entry.sha256 !== job.sha256)
  ) {
    const now = entry ? `${entry.kind} v${entry.version}` : 'no entry';
    return { dropped: { outcome: 'dropped', reason: `version ${job.version} no longer current (${now})` } };
  }
  return { entry };
}

/** stillCurrent, as the manifest says now. */
export async function currentVersion(
  job: VersionRef,
  ctx: JobContext,
): Promise<{ entry: FileEntry } | { dropped: JobOutcome }> {
  return stillCurrent(job, await ctx.manifest.governing(job.charmId, job.path));
}

/** A job's first step in one round trip: its lock (`lockName`, default the path) and stillCurrent under it. */
export async function lockCurrentVersion(
  job: VersionRef,
  ctx: JobContext,
  lockName = job.path,
): Promise<{ lock: PathLock; current: { entry: FileEntry } | { dropped: JobOutcome } }> {
  const { lock, governing } = await ctx.manifest.lockPathReading(job.charmId, lockName, {
    waitMs: LOCK_WAIT_MS,
    read: job.path,
  });
  return { lock, current: stillCurrent(job, governing) };
}

/**
 * Reads a version from each source backend in turn and hands its bytes to `write`, until one write succeeds.
 * `write` throws `mismatch` (as classified by `isMismatch`) when the bytes are not the version's; any other
 * error from `write` is the target failing and ends the attempt (the job retries). Returns the source used, or
 * throws: UnrecoverableError when every source answered and none had the bytes (only S3 can help then).
 */
export async function copyFromSources(options: {
  job: VersionRef;
  sources: readonly string[];
  ctx: JobContext;
  write: (body: Readable, source: { lastModified: string }) => Promise<void>;
  isMismatch: (err: unknown) => boolean;
}): Promise<string> {
  const { job, ctx } = options;
  const problems: string[] = [];
  let unreachableSources = 0;
  for (const name of options.sources) {
    const source = ctx.clientFor(name);
    if (!source) continue;
    let file: Awaited<ReturnType<typeof source.getFile>>;
    try {
      file = await source.getFile(job.charmId, job.path);
    } catch (err) {
      unreachableSources++;
      problems.push(`${name}: ${(err as Error).message}`);
      continue;
    }
    if (!file) {
      problems.push(`${name}: missing`);
      continue;
    }
    try {
      await options.write(file.body, file);
      return name;
    } catch (err) {
      if (!options.isMismatch(err)) throw err;
      problems.push(`${name}: holds different bytes`);
    }
  }
  const reason = `no source could provide version ${job.version}: ${problems.join('; ') || 'no source configured'}`;
  if (problems.length > 0 && unreachableSources === 0) throw new UnrecoverableError(reason);
  throw new Error(reason);
}
