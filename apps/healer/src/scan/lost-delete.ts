/**
 * Table row L2 (after L1, before F1–F7 and P4): the manifest lost an acknowledged delete. Redis restored from a
 * copy taken before a delete's tombstone commit names the deleted file version again (or, for a file written after
 * that copy and deleted with its directory, nothing), but the delete's jobs already ran: the owners no longer hold
 * it and the bucket's current entry of the key is a delete marker. Left alone, F4 (or P4) copies a copy that
 * missed the delete back (the delete undone), or F6 reports the path unrepairable.
 *
 * The proof is the bucket's: the replicator deletes an object only for a tombstone that still governs it, and
 * delete jobs are only enqueued after the tombstone's commit, so a delete marker stored after the file entry was
 * committed (its `atMs`), or stacked on the backup of that very version (or a newer one), proves a delete was
 * acknowledged after it; without an entry, a marker stacked on a backup of the very bytes every copy holds does
 * (a backup is only taken after a commit). With that proof, under the path lock, the entry re-read unchanged and
 * no write intent open, a tombstone is committed at the path and P5 deletes the copies it covers. Without it
 * nothing changes: two owners missing a file look exactly like two lost disks, and a refused delete (503) may have
 * been applied on two owners; the data is restored (F4, F5), never deleted on a guess.
 */
import type { BackupVersion } from '@cring/backup-store';
import type { FileEntry, Tombstone } from '@cring/manifest';
import { removeDeletedCopies } from './deleted-copies.ts';
import { hashCopies } from './path-copies.ts';
import type { Copy, S3State } from './plan.ts';
import {
  errorMessage,
  leaveToPipeline,
  lockOrReport,
  type ScanContext,
  stillGoverning,
  type UserScan,
} from './scan-context.ts';

/** What the bucket says about a delete of the path after the governing version (or of the bytes it backed up). */
export type DeleteProof =
  | {
      proven: true;
      deletedAtMs: number;
      /** Without an entry: the sha256 of the deleted backup, which every copy must hold. */
      deletedSha256?: string;
      evidence: string;
    }
  | { proven: false; reason: string };

/**
 * True when the path was handled here (delete recorded, busy, or changed meanwhile); false: row L2 does not apply.
 * `entry` is the governing file entry, undefined when no entry governs the path.
 */
export async function recoverLostDelete(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: (FileEntry & { path: string }) | undefined,
  copies: ReadonlyMap<string, Copy>,
  s3: S3State,
): Promise<boolean> {
  const { charmId } = user;
  // Cheap first: only a path the bucket's listing lacks can have a delete marker as its current entry. A committed
  // delete removed the file from a quorum: with the version's copies on a majority of owners (counting a backend
  // that was not listed as holding one), it was not deleted.
  const majority = Math.floor(user.owners.length / 2) + 1;
  const unlisted = ctx.backendNames.filter((name) => !user.reachable.has(name)).length;
  const matching = entry ? [...copies.values()].filter((copy) => copy.size === entry.size).length : 0;
  if (s3.state !== 'absent' || matching + unlisted >= majority || user.openIntents.has(path)) return false;
  if (!entry && copies.size === 0) return false;

  const proof = await deleteProof(ctx, charmId, path, entry);
  if (!proof.proven) return false;
  // A copy written after the delete is a later write's (acknowledged or refused): L1, F3 and P4 judge it.
  if ([...copies.values()].some((copy) => (copy.modifiedMs ?? 0) > proof.deletedAtMs)) return false;

  const detail = `${proof.evidence}: an acknowledged delete the manifest lost`;
  const problem = entry
    ? `deleted after v${entry.version} was committed`
    : 'unknown to the manifest, deleted';
  const lock = ctx.options.dryRun ? undefined : await lockOrReport(ctx, charmId, path);
  if (!lock && !ctx.options.dryRun) return true;
  let tombstone: Tombstone & { path: string };
  try {
    const unchanged = entry
      ? await stillGoverning(ctx, charmId, path, entry)
      : !(await ctx.manifest.governing(charmId, path));
    if (lock && (!unchanged || (await ctx.manifest.intent(charmId, path)))) {
      leaveToPipeline(ctx, user);
      return true;
    }
    if (proof.deletedSha256 !== undefined) {
      // Only the deleted bytes themselves: any other copy may be a write the bucket never saw (P4 adopts it).
      const hashed = await hashCopies(ctx, user, path, copies);
      const same = [...hashed.copies.values()].every((copy) => copy.sha256 === proof.deletedSha256);
      if (hashed.failed.length > 0 || hashed.copies.size !== copies.size || !same) return false;
    }
    if (!lock) {
      ctx.recorder.stats.lostDeletesRecovered++;
      ctx.recorder.finding({ charmId, path, problem, action: 'would record the delete', detail });
      return true;
    }
    // Holders of a tombstone are the backends known to have applied the delete: those listed without a copy.
    const holders = user.preference.filter((name) => user.reachable.has(name) && !copies.has(name));
    const atMs = proof.deletedAtMs;
    const version = await ctx.manifest.commitDelete(charmId, path, holders, lock, atMs);
    tombstone = { kind: 'tombstone', version, holders, atMs, path };
  } finally {
    await lock?.release();
  }
  ctx.recorder.stats.lostDeletesRecovered++;
  ctx.recorder.finding({
    charmId,
    path,
    problem,
    action: `delete recovered as v${tombstone.version}`,
    detail,
  });
  await removeDeletedCopies(ctx, user, path, tombstone, copies, s3);
  return true;
}

/**
 * Whether the bucket proves a delete of path after entry was committed: its current entry is a delete marker,
 * stored after the entry's `atMs`, or stacked on an object whose backup version is the entry's or newer (this
 * one needs no clock). Without an entry, a marker stacked on an object with sha256 metadata (the bytes the copies
 * must hold). An unreachable bucket, no marker, or an older one prove nothing.
 */
export async function deleteProof(
  ctx: ScanContext,
  charmId: string,
  path: string,
  entry: FileEntry | undefined,
): Promise<DeleteProof> {
  let history: BackupVersion[];
  try {
    history = await keyHistory(ctx, charmId, path);
  } catch (err) {
    return { proven: false, reason: `the bucket's history cannot be read: ${errorMessage(err)}` };
  }
  const [current, below] = history;
  if (!current?.deleteMarker) return { proven: false, reason: 'the bucket has no delete marker for it' };
  const markerMs = current.storedAt.getTime();
  if (entry && markerMs > entry.atMs) {
    return {
      proven: true,
      deletedAtMs: markerMs,
      evidence: `the bucket's delete marker is newer than v${entry.version}`,
    };
  }
  if (!below || below.deleteMarker) return { proven: false, reason: 'the delete marker covers no backup' };
  await ctx.limiter.take();
  const deleted = await ctx.store.head(charmId, path, below.versionId).catch(() => undefined);
  if (deleted?.version === undefined) return { proven: false, reason: 'the deleted backup cannot be read' };
  if (!entry && deleted.sha256 !== undefined) {
    return {
      proven: true,
      deletedAtMs: markerMs,
      deletedSha256: deleted.sha256,
      evidence: `the bucket's delete marker covers backup v${deleted.version} of the same bytes`,
    };
  }
  if (entry && deleted.version >= entry.version) {
    return {
      proven: true,
      deletedAtMs: Math.max(markerMs, entry.atMs),
      evidence: `the bucket's delete marker covers the backup of v${deleted.version}`,
    };
  }
  return { proven: false, reason: "the bucket's delete marker predates the entry" };
}

/** The key's own entries (not those below it), newest first; at most the two this row needs. */
async function keyHistory(ctx: ScanContext, charmId: string, path: string): Promise<BackupVersion[]> {
  await ctx.limiter.take();
  const entries: BackupVersion[] = [];
  for await (const version of ctx.store.versions(charmId, path)) {
    if (version.path !== path) continue;
    entries.push(version);
    if (entries.length === 2) break;
  }
  return entries;
}
