import type { BackendAccounts } from '@cring/accounts';
import type { BackupStore } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import { type JobQueues, S3_TARGET } from '@cring/jobs';
import type { Manifest } from '@cring/manifest';
import { createRing } from '@cring/ring';
import type { Redis } from 'ioredis';
import type { JobStates } from './job-states.ts';
import { createRateLimiter, createTaskPool } from './rate-limiter.ts';
import { createRepairs, type TrackedJob } from './repairs.ts';
import { createRecorder, finalize, type Recorder, ratesOf, type ScanReport } from './report.ts';
import { clearCursor, readCursor, writeCursor } from './scan-state.ts';
import { scanUser } from './user-scan.ts';

export interface ScanSettings {
  replicationFactor: number;
  maxRequestsPerSecond: number;
  /** Paths checked at once, across users. */
  concurrency: number;
  /** Users scanned at once. */
  userConcurrency: number;
  tombstoneRetentionMs: number;
  pendingGraceMs: number;
  /** Row L1 leaves copies younger than this to a later scan (a refusal may not be on record yet). */
  lostWriteGraceMs: number;
  lockWaitMs?: number;
}

export interface ScanDeps {
  redis: Redis;
  manifest: Manifest;
  store: BackupStore;
  queues: JobQueues;
  jobStates: JobStates;
  /** A client for every configured backend. */
  clients: ReadonlyMap<string, BackendClient>;
  /** Configured backends, in configured order (the ring is built from them). */
  backendNames: readonly string[];
  /** Backends whose users this process can list (through their agents), to find users the manifest does not know. */
  accountRows: readonly Pick<BackendAccounts, 'name' | 'charmIds'>[];
  settings: ScanSettings;
}

export interface ScanOptions {
  deep: boolean;
  prune: boolean;
  dryRun: boolean;
  /** Continue after the cursor of an unfinished scan. */
  resume: boolean;
  user?: string;
  maxRequestsPerSecond?: number;
  /** Aborting stops starting users; those in progress finish, and the cursor keeps the place. */
  signal?: AbortSignal;
}

export interface ScanProgress {
  usersDone: number;
  totalUsers: number;
  files: number;
}

export interface ScanRun {
  report: ScanReport;
  /** The repair jobs the scan enqueued or found already queued, for waiting on them. */
  tracked: readonly TrackedJob[];
}

export const CHARM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DEFAULT_LOCK_WAIT_MS = 60_000;

/** Every user known anywhere: the manifest, the bucket's first key segments, and the backends' own DBs. */
async function discoverUsers(deps: ScanDeps, recorder: Recorder): Promise<string[]> {
  const users = new Set((await deps.manifest.users()).filter((id) => id !== '' && !id.includes('/')));
  try {
    for await (const id of deps.store.users()) if (CHARM_ID.test(id)) users.add(id);
  } catch (err) {
    recorder.unreachable(S3_TARGET, `listing the bucket's users: ${(err as Error).message}`);
  }
  for (const rows of deps.accountRows) {
    try {
      for (const id of await rows.charmIds()) if (CHARM_ID.test(id)) users.add(id);
    } catch (err) {
      recorder.finding({
        charmId: '-',
        target: rows.name,
        problem: 'backend DB unreadable',
        action: 'its users were found elsewhere only',
        detail: (err as Error).message,
      });
    }
  }
  return [...users].sort();
}

/**
 * One scan over every user (or one), users in sorted order with bounded concurrency, every backend and S3 request
 * rate-limited. Returns the report (not yet waited on) and the repair jobs to wait for.
 */
export async function runScan(
  deps: ScanDeps,
  options: ScanOptions,
  onProgress?: (progress: ScanProgress) => void,
): Promise<ScanRun> {
  const started = performance.now();
  const startedAt = new Date();
  const scanId = startedAt.getTime().toString(36);
  const recorder = createRecorder();
  const maxRequestsPerSecond = options.maxRequestsPerSecond ?? deps.settings.maxRequestsPerSecond;
  const repairs = createRepairs({ queues: deps.queues, idSuffix: `heal-${scanId}`, dryRun: options.dryRun });
  const keepsCursor = !options.dryRun && options.user === undefined;

  let users = options.user !== undefined ? [options.user] : await discoverUsers(deps, recorder);
  let resumedAfter: string | undefined;
  if (options.resume && options.user === undefined) {
    const cursor = await readCursor(deps.redis);
    if (cursor) {
      resumedAfter = cursor.lastUser;
      users = users.filter((id) => id > cursor.lastUser);
    }
  }
  if (keepsCursor && !options.resume) await clearCursor(deps.redis);

  const progress: ScanProgress = { usersDone: 0, totalUsers: users.length, files: 0 };
  onProgress?.(progress);
  const ctx = {
    manifest: deps.manifest,
    store: deps.store,
    clients: deps.clients,
    backendNames: deps.backendNames,
    ring: createRing([...deps.backendNames]),
    replicationFactor: deps.settings.replicationFactor,
    limiter: createRateLimiter(maxRequestsPerSecond),
    pool: createTaskPool(deps.settings.concurrency),
    jobStates: deps.jobStates,
    repairs,
    recorder,
    options: { deep: options.deep, prune: options.prune, dryRun: options.dryRun },
    tombstoneRetentionMs: deps.settings.tombstoneRetentionMs,
    pendingGraceMs: deps.settings.pendingGraceMs,
    lostWriteGraceMs: deps.settings.lostWriteGraceMs,
    lockWaitMs: deps.settings.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS,
    onFile: () => {
      progress.files++;
      onProgress?.(progress);
    },
  };

  // The cursor only moves past users whose scan (and every earlier user's) has finished.
  const finished = new Array<boolean>(users.length).fill(false);
  let lowWater = -1;
  let interrupted = false;
  const userPool = createTaskPool(deps.settings.userConcurrency);
  await Promise.all(
    users.map((charmId, index) =>
      userPool.run(async () => {
        if (options.signal?.aborted) {
          interrupted = true;
          return;
        }
        try {
          await scanUser(ctx, charmId);
        } catch (err) {
          recorder.stats.userErrors++;
          recorder.finding({
            charmId,
            problem: 'scan error',
            action: 'none',
            detail: (err as Error).message,
          });
        }
        finished[index] = true;
        progress.usersDone++;
        onProgress?.(progress);
        let moved = false;
        while (finished[lowWater + 1]) {
          lowWater++;
          moved = true;
        }
        if (moved && keepsCursor) {
          await writeCursor(deps.redis, { scanId, lastUser: users[lowWater] as string, atMs: Date.now() });
        }
      }),
    ),
  );
  if (keepsCursor && !interrupted) await clearCursor(deps.redis);

  const scanSeconds = (performance.now() - started) / 1000;
  const report = finalize({
    scanId,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    scanSeconds,
    options: {
      deep: options.deep,
      prune: options.prune,
      dryRun: options.dryRun,
      resume: options.resume,
      ...(options.user !== undefined ? { user: options.user } : {}),
      maxRequestsPerSecond,
    },
    totalUsers: users.length,
    ...(resumedAfter !== undefined ? { resumedAfter } : {}),
    interrupted,
    stats: recorder.stats,
    rates: ratesOf(recorder.stats, scanSeconds),
    ...recorder.snapshot(),
  });
  return { report, tracked: repairs.tracked };
}
