/**
 * One user's scan, in the order of the decision table (`apps/healer/README.md`; rows U1, U2 and P1 are decided
 * here): resolve abandoned write intents (`intents.ts`), list the tree on every configured backend (owners, and
 * the others, which may hold copies from before a ring change or from sloppy-quorum writes) and in S3
 * (`inventory.ts`), read the manifest, then judge each path by its governing entry and hand it to the module of
 * that row; last, collect tombstones and clear stale pending markers.
 *
 * Races with user traffic: the listing comes first and the manifest after it, and a path whose entry is newer
 * than the user's latest version when the listing started is left alone (the pipeline is still applying it; the
 * next scan judges it). Every change the scan makes itself is re-checked against the manifest first: adoption
 * and pruning under the path lock, and the repair jobs re-check under the lock when they run.
 */
import type { BackendClient } from '@cring/charm';
import { S3_TARGET } from '@cring/jobs';
import { governingIn } from '@cring/manifest';
import { adoptUnknownPath } from './adoption.ts';
import { removeDeletedCopies } from './deleted-copies.ts';
import { resolveAbandonedIntents } from './intents.ts';
import { type BackendListing, listBackend, listS3 } from './inventory.ts';
import { readPendingMarkers } from './job-states.ts';
import { checkKnownFile } from './known-file.ts';
import { recoverLostDelete } from './lost-delete.ts';
import { recoverLostWrite } from './lost-write.ts';
import { listedCopies } from './path-copies.ts';
import { errorMessage, leaveToPipeline, type ScanContext, type UserScan } from './scan-context.ts';
import { clearStaleMarkers } from './stale-markers.ts';
import { collectTombstones } from './tombstone-collection.ts';

export async function scanUser(ctx: ScanContext, charmId: string): Promise<void> {
  // Before the listing: abandoned writes are undone first, so their bytes are never judged as copies.
  const openIntents = await resolveAbandonedIntents(ctx, charmId);
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

/** The path's governing entry picks the table row, and so the module that decides. */
async function checkPath(ctx: ScanContext, user: UserScan, path: string): Promise<void> {
  const stats = ctx.recorder.stats;
  const governing = governingIn(user.entries, path);
  const { copies, s3, object } = listedCopies(user, path);

  stats.files++;
  stats.bytes +=
    governing?.kind === 'file' ? governing.size : ([...copies.values()][0]?.size ?? object?.size ?? 0);
  ctx.onFile?.();
  if (governing?.kind === 'tombstone' && (copies.size > 0 || object)) {
    user.covered.add(`${governing.path}|${governing.version}`);
  }
  if (governing && governing.version > user.versionBefore) return leaveToPipeline(ctx, user);
  if (!governing) {
    if (await recoverLostDelete(ctx, user, path, undefined, copies, s3)) return;
    return await adoptUnknownPath(ctx, user, path, copies, s3);
  }
  if (await recoverLostWrite(ctx, user, path, governing, copies, s3)) return;
  if (governing.kind === 'tombstone')
    return await removeDeletedCopies(ctx, user, path, governing, copies, s3);
  if (await recoverLostDelete(ctx, user, path, governing, copies, s3)) return;
  return await checkKnownFile(ctx, user, path, governing, copies, s3);
}
