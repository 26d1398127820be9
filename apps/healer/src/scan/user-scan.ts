/**
 * One user's scan: list the tree on every configured backend (owners, and the others, which may hold copies from
 * before a ring change or from sloppy-quorum writes) and in S3, read the manifest, then decide path by path
 * (`plan.ts`) and act: enqueue repairs, adopt unknown files, fix holder lists, prune, collect tombstones, clear
 * stale pending markers.
 *
 * Races with user traffic: the listing comes first and the manifest after it, and a path whose entry is newer
 * than the user's latest version when the listing started is left alone (the pipeline is still applying it; the
 * next scan judges it). Every
 * change the scan makes itself is re-checked against the manifest first: adoption and pruning under the path
 * lock, and the repair jobs re-check under the lock when they run.
 */
import type { BackupStore } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import { S3_TARGET } from '@cring/jobs';
import {
  type FileEntry,
  governingIn,
  LockTimeoutError,
  type Manifest,
  type ManifestEntry,
  type PathLock,
  type Tombstone,
} from '@cring/manifest';
import type { Ring } from '@cring/ring';
import { resolveAbandonedIntents } from './intents.ts';
import {
  type BackendListing,
  type CopyInfo,
  type HashedCopy,
  hashBackendCopy,
  hashS3Object,
  headS3Object,
  listBackend,
  listS3,
  type S3Listing,
} from './inventory.ts';
import { isFileRepairJob, isStaleMarker, type JobStates, readPendingMarkers } from './job-states.ts';
import { type Copy, chooseAdoption, classifyFile, type FileVerdict, type S3State } from './plan.ts';
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
  lockWaitMs: number;
  onFile?: () => void;
}

interface UserScan {
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

const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

export async function scanUser(ctx: ScanContext, charmId: string): Promise<void> {
  // Before the listing: abandoned writes are undone first, so their bytes are never judged as copies.
  const openIntents = await resolveAbandonedIntents(ctx, charmId, (path) => lockOrReport(ctx, charmId, path));
  const versionBefore = await ctx.manifest.latestVersion(charmId);
  const [listed, s3] = await Promise.all([
    Promise.all(
      ctx.backendNames.map(
        async (name) =>
          [name, await listBackend(ctx.clients.get(name) as BackendClient, charmId, ctx.limiter)] as const,
      ),
    ),
    listS3(ctx.store, charmId, ctx.limiter),
  ]);
  const listings = new Map<string, BackendListing>(listed);
  const reachable = new Set<string>();
  for (const [name, listing] of listings) {
    if (listing.state === 'listed') reachable.add(name);
    else ctx.recorder.unreachable(name, listing.reason);
  }
  if (s3.state === 'unreachable') ctx.recorder.unreachable(S3_TARGET, s3.reason);

  // A delete interrupted mid-sweep left covered entries behind (hidden from reads): remove them first.
  await ctx.manifest.finishSweeps(charmId);
  const entries = await ctx.manifest.entriesWithin(charmId);
  const markers = await readPendingMarkers(ctx.manifest, ctx.jobStates, charmId);
  const alive = new Map<string, string[]>();
  for (const marker of markers) {
    if (marker.status.state === 'alive')
      alive.set(marker.target, [...(alive.get(marker.target) ?? []), marker.jobId]);
  }
  const user: UserScan = {
    charmId,
    openIntents,
    versionBefore,
    entries,
    listings,
    reachable,
    s3,
    owners: ctx.ring.preferenceList(charmId, ctx.replicationFactor),
    preference: ctx.ring.preferenceList(charmId, ctx.backendNames.length),
    alive,
    covered: new Set(),
    deleteJobs: new Set(),
    recent: 0,
    errors: 0,
  };

  const paths = new Set<string>();
  for (const listing of listings.values()) {
    if (listing.state === 'listed') for (const path of listing.files.keys()) paths.add(path);
  }
  if (s3.state === 'listed') for (const path of s3.objects.keys()) paths.add(path);
  for (const [path, entry] of entries) if (entry.kind === 'file') paths.add(path);

  for (const [name, listing] of listings) {
    if (listing.state === 'listed' && listing.userMissing && user.owners.includes(name) && paths.size > 0) {
      ctx.recorder.finding({
        charmId,
        target: name,
        problem: 'account missing on an owner',
        action: 'none',
        detail: 'account sync adds it; repairs to this backend retry until then',
      });
    }
  }

  await Promise.all(
    [...paths].sort().map((path) =>
      ctx.pool.run(async () => {
        try {
          await checkPath(ctx, user, path);
        } catch (err) {
          user.errors++;
          ctx.recorder.finding({
            charmId,
            path,
            problem: 'scan error',
            action: 'none',
            detail: errorMessage(err),
          });
        }
      }),
    ),
  );
  await collectTombstones(ctx, user);
  await clearStaleMarkers(ctx, user, markers);
  if (user.errors > 0) ctx.recorder.stats.userErrors++;
  ctx.recorder.stats.users++;
}

async function checkPath(ctx: ScanContext, user: UserScan, path: string): Promise<void> {
  const stats = ctx.recorder.stats;
  const governing = governingIn(user.entries, path);
  const copies = new Map<string, Copy>();
  for (const [name, listing] of user.listings) {
    const copy = listing.state === 'listed' ? listing.files.get(path) : undefined;
    if (copy) copies.set(name, { ...copy });
  }
  const object = user.s3.state === 'listed' ? user.s3.objects.get(path) : undefined;
  const s3: S3State =
    user.s3.state === 'unreachable'
      ? { state: 'unreachable' }
      : object
        ? { state: 'present', size: object.size }
        : { state: 'absent' };

  stats.files++;
  stats.bytes +=
    governing?.kind === 'file' ? governing.size : ([...copies.values()][0]?.size ?? object?.size ?? 0);
  ctx.onFile?.();
  if (governing?.kind === 'tombstone' && (copies.size > 0 || object)) {
    user.covered.add(`${governing.path}|${governing.version}`);
  }
  if (governing && governing.version > user.versionBefore) {
    stats.recent++;
    user.recent++;
    return;
  }
  if (!governing) return await adoptPath(ctx, user, path, copies, s3);
  if (governing.kind === 'tombstone')
    return await removeDeletedCopies(ctx, user, path, governing, copies, s3);
  return await checkFile(ctx, user, path, governing, copies, s3);
}

async function checkFile(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: FileEntry,
  copies: Map<string, Copy>,
  listedS3: S3State,
): Promise<void> {
  const reachable = new Set(user.reachable);
  let s3 = listedS3;
  if (ctx.options.deep) {
    const hashed = await hashCopies(ctx, user, path, copies);
    for (const name of [...copies.keys()]) {
      const copy = hashed.copies.get(name);
      if (copy) copies.set(name, { size: copy.size, mode: copies.get(name)?.mode ?? 0, sha256: copy.sha256 });
      else copies.delete(name);
    }
    for (const name of hashed.failed) reachable.delete(name);
    if (s3.state === 'present') s3 = await hashedS3State(ctx, user.charmId, path);
  }
  const facts = {
    entry,
    owners: user.owners,
    preference: user.preference,
    reachable,
    copies,
    s3,
    deep: ctx.options.deep,
  };
  let verdict = classifyFile(facts);
  if (verdict.needsS3Sha256) {
    facts.s3 = await s3WithSha256(ctx, user.charmId, path);
    verdict = classifyFile(facts);
  }
  await applyVerdict(ctx, user, path, entry, verdict, { recheck: true });
}

/** Hashes every listed copy of path; a copy that vanished meanwhile is left out, a failing backend reported. */
async function hashCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  copies: ReadonlyMap<string, CopyInfo>,
): Promise<{ copies: Map<string, HashedCopy & { mode: number }>; failed: string[] }> {
  const hashed = new Map<string, HashedCopy & { mode: number }>();
  const failed: string[] = [];
  await Promise.all(
    [...copies].map(async ([name, info]) => {
      try {
        const copy = await hashBackendCopy(
          ctx.clients.get(name) as BackendClient,
          user.charmId,
          path,
          ctx.limiter,
        );
        if (!copy) return;
        ctx.recorder.stats.hashedBytes += copy.size;
        hashed.set(name, { ...copy, mode: info.mode });
      } catch (err) {
        if (err instanceof RangeError) throw err; // a name no request can address: the path's problem, reported
        failed.push(name);
        ctx.recorder.unreachable(name, errorMessage(err));
      }
    }),
  );
  return { copies: hashed, failed };
}

async function hashedS3State(ctx: ScanContext, charmId: string, path: string): Promise<S3State> {
  try {
    const object = await hashS3Object(ctx.store, charmId, path, ctx.limiter);
    if (!object) return { state: 'absent' };
    ctx.recorder.stats.hashedBytes += object.size;
    return { state: 'present', size: object.size, sha256: object.sha256 ?? '', hashed: object.hashed.sha256 };
  } catch (err) {
    ctx.recorder.unreachable(S3_TARGET, errorMessage(err));
    return { state: 'unreachable' };
  }
}

/** The object's sha256 metadata ('' when it has none, so it cannot be restored from). */
async function s3WithSha256(ctx: ScanContext, charmId: string, path: string): Promise<S3State> {
  try {
    const head = await headS3Object(ctx.store, charmId, path, ctx.limiter);
    return head ? { state: 'present', size: head.size, sha256: head.sha256 ?? '' } : { state: 'absent' };
  } catch (err) {
    ctx.recorder.unreachable(S3_TARGET, errorMessage(err));
    return { state: 'unreachable' };
  }
}

function countProblem(ctx: ScanContext, kind: FileVerdict['problems'][number]['kind']): void {
  const stats = ctx.recorder.stats;
  if (kind === 'missing') stats.missing++;
  else if (kind === 'size-mismatch') stats.sizeMismatched++;
  else stats.hashMismatched++;
}

function countRepair(ctx: ScanContext, tracked: TrackedJob): void {
  if (tracked.existing) ctx.recorder.stats.repairsAlreadyQueued++;
  else ctx.recorder.stats.repairsEnqueued++;
}

async function applyVerdict(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: FileEntry,
  verdict: FileVerdict,
  options: { recheck: boolean },
): Promise<void> {
  const { charmId } = user;
  const { dryRun, prune } = ctx.options;
  const stats = ctx.recorder.stats;
  const ownerProblems = verdict.problems.filter((p) => p.target !== S3_TARGET);
  const pruning = prune && verdict.prunable.length > 0 && ownerProblems.length === 0;
  if (
    verdict.problems.length === 0 &&
    verdict.holdersToRemove.length === 0 &&
    verdict.holdersToAdd.length === 0 &&
    !pruning
  ) {
    return;
  }
  if (options.recheck && !dryRun) {
    const now = await ctx.manifest.governing(charmId, path);
    if (now?.kind !== 'file' || now.path !== path || now.version !== entry.version) {
      stats.recent++;
      user.recent++;
      return;
    }
  }
  for (const problem of verdict.problems) countProblem(ctx, problem.kind);
  // Reads prefer holders: stop naming a backend whose copy is gone or wrong before anything else.
  for (const backend of verdict.holdersToRemove) {
    if (dryRun || (await ctx.manifest.removeHolder(charmId, path, entry.version, backend)))
      stats.holdersFixed++;
  }
  for (const backend of verdict.holdersToAdd) {
    if (dryRun || (await ctx.manifest.addHolder(charmId, path, entry.version, backend))) stats.holdersFixed++;
  }
  const version = {
    charmId,
    path,
    version: entry.version,
    sha256: entry.sha256,
    size: entry.size,
    mode: entry.mode,
  };
  for (const repair of verdict.repairs) {
    const problem = verdict.problems.find((p) => p.target === repair.target)?.kind ?? 'missing';
    const base = { charmId, path, target: repair.target, problem };
    const aliveHere = user.alive.get(repair.target) ?? [];
    let tracked: TrackedJob;
    switch (repair.action) {
      case 'replicate':
        tracked = await ctx.repairs.forBackend(
          repair.target,
          { kind: 'replicate', ...version, sources: repair.sources },
          aliveHere,
        );
        ctx.recorder.finding({
          ...base,
          action: 'replicate',
          detail: `from ${repair.sources.join(', ')}`,
          jobId: tracked.jobId,
        });
        break;
      case 'restore':
        tracked = await ctx.repairs.forBackend(repair.target, { kind: 'restore', ...version }, aliveHere);
        ctx.recorder.finding({ ...base, action: 'restore from S3', jobId: tracked.jobId });
        break;
      case 'backup':
        tracked = await ctx.repairs.forS3({ kind: 'backup', ...version, sources: repair.sources }, aliveHere);
        ctx.recorder.finding({
          ...base,
          action: 'back up',
          detail: `from ${repair.sources.join(', ')}`,
          jobId: tracked.jobId,
        });
        break;
      case 'unrepairable':
        stats.unrepairable++;
        ctx.recorder.finding({ ...base, action: 'none: unrepairable', detail: repair.reason });
        continue;
      case 'keep-newer':
        stats.unrepairable++;
        ctx.recorder.finding({
          ...base,
          action: 'kept: not replaced by an older version',
          detail: `written ${new Date(repair.modifiedMs).toISOString()}, after v${entry.version} was committed; the manifest may have lost a later acknowledged write`,
        });
        continue;
    }
    countRepair(ctx, tracked);
  }
  if (pruning) await pruneCopies(ctx, user, path, entry, verdict.prunable);
}

/**
 * Deletes the copies a non-owner holds, under the path lock, once every owner verifiably holds the version:
 * each owner's copy is hashed again right before, and nothing is deleted unless all of them match.
 */
async function pruneCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: FileEntry,
  nonOwners: readonly string[],
): Promise<void> {
  const { charmId } = user;
  const stats = ctx.recorder.stats;
  if (ctx.options.dryRun) {
    for (const backend of nonOwners) {
      stats.pruned++;
      ctx.recorder.finding({
        charmId,
        path,
        target: backend,
        problem: 'copy on a non-owner',
        action: 'would prune',
      });
    }
    return;
  }
  const lock = await lockOrReport(ctx, charmId, path);
  if (!lock) return;
  try {
    const now = await ctx.manifest.governing(charmId, path);
    if (now?.kind !== 'file' || now.path !== path || now.version !== entry.version) return;
    for (const owner of user.owners) {
      let copy: HashedCopy | undefined;
      try {
        copy = await hashBackendCopy(ctx.clients.get(owner) as BackendClient, charmId, path, ctx.limiter);
      } catch (err) {
        ctx.recorder.unreachable(owner, errorMessage(err));
        return;
      }
      if (copy) stats.hashedBytes += copy.size;
      if (copy?.sha256 !== entry.sha256 || copy.size !== entry.size) {
        ctx.recorder.finding({
          charmId,
          path,
          target: owner,
          problem: 'owner does not hold the version',
          action: 'prune skipped',
          detail: 'the next scan repairs the owner first',
        });
        return;
      }
    }
    for (const backend of nonOwners) {
      if (now.holders.includes(backend))
        await ctx.manifest.removeHolder(charmId, path, entry.version, backend);
      await ctx.limiter.take();
      await lock.assertHeld(); // a scan paused past the TTL must not delete under a newer writer
      await (ctx.clients.get(backend) as BackendClient).deletePath(charmId, path);
      stats.pruned++;
      ctx.recorder.finding({
        charmId,
        path,
        target: backend,
        problem: 'copy on a non-owner',
        action: 'pruned',
      });
    }
  } finally {
    await lock.release();
  }
}

async function lockOrReport(ctx: ScanContext, charmId: string, path: string): Promise<PathLock | undefined> {
  try {
    return await ctx.manifest.lockPath(charmId, path, { waitMs: ctx.lockWaitMs });
  } catch (err) {
    if (!(err instanceof LockTimeoutError)) throw err;
    ctx.recorder.finding({ charmId, path, problem: 'path busy', action: 'skipped', detail: err.message });
    return undefined;
  }
}

/** A tombstone wins over any copy: each backend (and S3) holding one gets the tombstone's delete job again. */
async function removeDeletedCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  tombstone: Tombstone & { path: string },
  copies: ReadonlyMap<string, Copy>,
  s3: S3State,
): Promise<void> {
  const { charmId } = user;
  const job = { kind: 'delete' as const, charmId, path: tombstone.path, version: tombstone.version };
  const detail = `deleted at v${tombstone.version}${tombstone.path === path ? '' : ` with ${tombstone.path}`}`;
  const targets = [...copies.keys(), ...(s3.state === 'present' ? [S3_TARGET] : [])];
  for (const target of targets) {
    ctx.recorder.stats.deletedCopies++;
    const key = `${target}|${tombstone.path}|${tombstone.version}`;
    let jobId: string | undefined;
    if (!user.deleteJobs.has(key)) {
      user.deleteJobs.add(key);
      const alive = user.alive.get(target) ?? [];
      const tracked =
        target === S3_TARGET
          ? await ctx.repairs.forS3(job, alive)
          : await ctx.repairs.forBackend(target, job, alive);
      countRepair(ctx, tracked);
      jobId = tracked.jobId;
    }
    ctx.recorder.finding({
      charmId,
      path,
      target,
      problem: 'copy of a deleted path',
      action: 'delete',
      detail,
      ...(jobId ? { jobId } : {}),
    });
  }
}

/**
 * A file the manifest does not know is live: it is adopted, never deleted. Under the path lock (a write in flight
 * holds it until it is recorded), the copies are hashed and the winner recorded as a new version held by the
 * backends that have those bytes; then the owners and the bucket that lack them get repairs.
 */
async function adoptPath(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  copies: ReadonlyMap<string, Copy>,
  s3: S3State,
): Promise<void> {
  const { charmId } = user;
  const stats = ctx.recorder.stats;
  if (copies.size === 0) {
    if (s3.state === 'present') {
      stats.s3Only++;
      ctx.recorder.finding({
        charmId,
        path,
        target: S3_TARGET,
        problem: 'only in S3, unknown to the manifest and every backend',
        action: 'kept, not restored',
        detail: 'the backends agree it does not exist (it may be a delete the bucket has not applied)',
      });
    }
    return;
  }
  if (user.openIntents.has(path)) {
    ctx.recorder.finding({
      charmId,
      path,
      problem: 'unknown to the manifest, with an open write intent',
      action: 'not adopted',
      detail: 'a write nobody acknowledged; it is rolled back once its writer is gone',
    });
    return;
  }
  let lock: PathLock | undefined;
  if (!ctx.options.dryRun) {
    lock = await lockOrReport(ctx, charmId, path);
    if (!lock) return;
  }
  let entry: FileEntry;
  let hashed: Awaited<ReturnType<typeof hashCopies>>;
  let choice: ReturnType<typeof chooseAdoption>;
  try {
    if (
      lock &&
      ((await ctx.manifest.governing(charmId, path)) || (await ctx.manifest.intent(charmId, path)))
    ) {
      stats.recent++;
      user.recent++;
      return;
    }
    hashed = await hashCopies(ctx, user, path, copies);
    choice = chooseAdoption(hashed.copies, user.owners, user.preference);
    if (!choice) return;
    const file = { sha256: choice.sha256, size: choice.size, mode: choice.mode, holders: choice.holders };
    const version = lock ? await ctx.manifest.commitWrite(charmId, path, file, lock) : 0;
    entry = { kind: 'file', version, ...file, atMs: Date.now() };
  } finally {
    await lock?.release();
  }
  stats.adopted++;
  ctx.recorder.finding({
    charmId,
    path,
    problem: 'unknown to the manifest',
    action: ctx.options.dryRun ? 'would adopt' : `adopted as v${entry.version}`,
    detail: `sha256 ${choice.sha256.slice(0, 12)}…, ${choice.size} bytes, held by ${choice.holders.join(', ')}`,
  });
  if (choice.others.length > 0) {
    stats.disagreements++;
    ctx.recorder.finding({
      charmId,
      path,
      problem: 'copies disagree',
      action: `kept the bytes of ${choice.holders.join(', ')}`,
      detail: choice.others
        .map(
          (other) =>
            `${other.backends.join(', ')} held sha256 ${other.sha256.slice(0, 12)}… (${other.size} bytes)`,
        )
        .join('; '),
    });
  }
  const reachable = new Set([...user.reachable].filter((name) => !hashed.failed.includes(name)));
  const hashedCopies = new Map<string, Copy>(
    [...hashed.copies].map(([name, copy]) => [
      name,
      { size: copy.size, mode: copy.mode, sha256: copy.sha256 },
    ]),
  );
  const known = s3.state === 'present' ? await s3WithSha256(ctx, charmId, path) : s3;
  const verdict = classifyFile({
    entry,
    owners: user.owners,
    preference: user.preference,
    reachable,
    copies: hashedCopies,
    s3: known,
    deep: false,
  });
  await applyVerdict(ctx, user, path, entry, verdict, { recheck: false });
}

/**
 * Forgets tombstones past their retention once nothing they cover is left: every backend and the bucket were
 * listed, none holds a covered copy, and no delete job for them is still live.
 */
async function collectTombstones(ctx: ScanContext, user: UserScan): Promise<void> {
  if (user.errors > 0 || user.reachable.size !== ctx.backendNames.length || user.s3.state !== 'listed')
    return;
  const now = Date.now();
  for (const [path, entry] of user.entries) {
    if (entry.kind !== 'tombstone' || now - entry.atMs <= ctx.tombstoneRetentionMs) continue;
    if (user.covered.has(`${path}|${entry.version}`)) continue;
    const base = `delete-${user.charmId}-${entry.version}`;
    const live = [...user.alive.values()].flat().some((id) => id === base || id.startsWith(`${base}-`));
    if (live) continue;
    if (ctx.options.dryRun || (await ctx.manifest.removeTombstone(user.charmId, path, entry.version))) {
      ctx.recorder.stats.tombstonesCollected++;
    }
  }
}

/**
 * Pending markers that no job will ever clear keep reads away from a backend for good. Once this scan checked
 * the marker's target (and enqueued whatever repair it needs, with markers of their own), they go.
 */
async function clearStaleMarkers(
  ctx: ScanContext,
  user: UserScan,
  markers: Awaited<ReturnType<typeof readPendingMarkers>>,
): Promise<void> {
  if (user.recent > 0 || user.errors > 0) return;
  const now = Date.now();
  for (const marker of markers) {
    if (!isFileRepairJob(marker.jobId) || !isStaleMarker(marker, now, ctx.pendingGraceMs)) continue;
    const checked =
      marker.target === S3_TARGET
        ? user.s3.state === 'listed'
        : user.listings.get(marker.target)?.state === 'listed';
    if (!checked) continue;
    if (!ctx.options.dryRun) await ctx.manifest.removePending(user.charmId, marker.target, marker.jobId);
    ctx.recorder.stats.staleMarkersCleared++;
    ctx.recorder.finding({
      charmId: user.charmId,
      target: marker.target,
      problem: `stale pending marker (job ${marker.status.state})`,
      action: ctx.options.dryRun ? 'would clear' : 'cleared',
      jobId: marker.jobId,
    });
  }
}
