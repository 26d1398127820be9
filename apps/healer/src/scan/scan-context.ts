/**
 * What every decision module of a user's scan works with: the scan's dependencies (`ScanContext`), what was
 * found for the user before the paths are judged (`UserScan`), and the few steps they all take the same way.
 */
import type { BackupStore } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import {
  type FileEntry,
  LockTimeoutError,
  type Manifest,
  type ManifestEntry,
  type PathLock,
} from '@cring/manifest';
import type { Ring } from '@cring/ring';
import type { BackendListing, S3Listing } from './inventory.ts';
import type { JobStates } from './job-states.ts';
import type { RateLimiter, TaskPool } from './rate-limiter.ts';
import type { Repairs, TrackedJob } from './repairs.ts';
import type { Recorder } from './report.ts';

export interface ScanContext {
  manifest: Manifest;
  store: BackupStore;
  clients: ReadonlyMap<string, BackendClient>;
  /** Configured backends, in configured order. */
  backendNames: readonly string[];
  ring: Ring;
  replicationFactor: number;
  limiter: RateLimiter;
  /** Bounds the paths checked at once, across users. */
  pool: TaskPool;
  jobStates: JobStates;
  repairs: Repairs;
  recorder: Recorder;
  options: { deep: boolean; prune: boolean; dryRun: boolean };
  tombstoneRetentionMs: number;
  pendingGraceMs: number;
  /** Row L1 adopts only copies written longer ago than this (backend mtime against this host's clock). */
  lostWriteGraceMs: number;
  lockWaitMs: number;
  onFile?: () => void;
}

export interface UserScan {
  charmId: string;
  /** Paths with a write intent still open: never adopted (their bytes were not acknowledged). */
  openIntents: Set<string>;
  /** The user's latest version before the listing started: newer entries are still being applied. */
  versionBefore: number;
  entries: Map<string, ManifestEntry>;
  listings: Map<string, BackendListing>;
  reachable: Set<string>;
  s3: S3Listing;
  owners: string[];
  preference: string[];
  /** Per target: ids of live jobs for this user (from the pending markers). */
  alive: Map<string, string[]>;
  /** Tombstones (`path|version`) that still cover a copy somewhere. */
  covered: Set<string>;
  /** Delete jobs already asked for in this scan (`target|path|version`). */
  deleteJobs: Set<string>;
  recent: number;
  errors: number;
}

export const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The path lock, or a `path busy` finding (and undefined) when it stays taken past the scan's wait. */
export async function lockOrReport(
  ctx: ScanContext,
  charmId: string,
  path: string,
): Promise<PathLock | undefined> {
  try {
    return await ctx.manifest.lockPath(charmId, path, { waitMs: ctx.lockWaitMs });
  } catch (err) {
    if (!(err instanceof LockTimeoutError)) throw err;
    ctx.recorder.finding({ charmId, path, problem: 'path busy', action: 'skipped', detail: err.message });
    return undefined;
  }
}

/** The path's entry now, if it is still the version the scan judged (else the pipeline changed it meanwhile). */
export async function stillGoverning(
  ctx: ScanContext,
  charmId: string,
  path: string,
  entry: FileEntry,
): Promise<(FileEntry & { path: string }) | undefined> {
  const now = await ctx.manifest.governing(charmId, path);
  return now?.kind === 'file' && now.path === path && now.version === entry.version ? now : undefined;
}

/** A path changed during the scan: left to the pipeline, the next scan judges it. */
export function leaveToPipeline(ctx: ScanContext, user: UserScan): void {
  ctx.recorder.stats.recent++;
  user.recent++;
}

export function countRepair(ctx: ScanContext, tracked: TrackedJob): void {
  if (tracked.existing) ctx.recorder.stats.repairsAlreadyQueued++;
  else ctx.recorder.stats.repairsEnqueued++;
}
