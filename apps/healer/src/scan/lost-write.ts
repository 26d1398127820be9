/**
 * Table row L1 (before F1–F7 and P5): the manifest lost an acknowledged write. Redis restored from an older copy
 * (or its last second lost) names an older version, or a tombstone, while a quorum of backends holds the same
 * newer bytes, written (backend mtime) after that entry was committed. Left alone, F3 would only keep them
 * (unreadable: the gateway serves what the manifest names) and P5 would delete them. Under the path lock, with
 * the entry unchanged and no write intent open, every copy is hashed again; bytes `lostWrite` (`plan.ts`) finds on
 * a quorum are committed as a new version held by those backends, and F1–F7 bring the owners and the bucket to it.
 * Only copies written longer ago than `lostWriteGraceMs`: younger ones may be a refused write the gateway has not
 * put back on record yet (Redis unreachable at the refusal); they are left to a later scan (`recent`).
 */
import type { ManifestEntry, PathLock } from '@cring/manifest';
import { applyToNewVersion } from './apply-verdict.ts';
import { hashCopies } from './path-copies.ts';
import { type AdoptionChoice, type Copy, lostWrite, type S3State } from './plan.ts';
import { leaveToPipeline, lockOrReport, type ScanContext, type UserScan } from './scan-context.ts';

/** True when the path was handled here (recovered, busy, too young, or changed meanwhile); false: no lost write. */
export async function recoverLostWrite(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  governing: ManifestEntry & { path: string },
  copies: ReadonlyMap<string, Copy>,
  s3: S3State,
): Promise<boolean> {
  const { charmId } = user;
  // Cheap first: hashing is only worth it when enough listed copies are newer than the entry.
  const majority = Math.floor(user.owners.length / 2) + 1;
  const newer = [...copies.values()].filter((copy) => (copy.modifiedMs ?? 0) > governing.atMs);
  if (newer.length < majority || ctx.options.dryRun || user.openIntents.has(path)) return false;

  const lock: PathLock | undefined = await lockOrReport(ctx, charmId, path);
  if (!lock) return true;
  let choice: AdoptionChoice | undefined;
  let version: number;
  let hashedCopies: Map<string, Copy>;
  let reachable: Set<string>;
  try {
    const now = await ctx.manifest.governing(charmId, path);
    if (
      now?.kind !== governing.kind ||
      now.version !== governing.version ||
      now.path !== governing.path ||
      (await ctx.manifest.intent(charmId, path))
    ) {
      leaveToPipeline(ctx, user);
      return true;
    }
    const hashed = await hashCopies(ctx, user, path, copies);
    reachable = new Set([...user.reachable].filter((name) => !hashed.failed.includes(name)));
    // The hashed bytes, with the listing's mtime: it tells an acknowledged newer write from an old copy.
    hashedCopies = new Map(
      [...hashed.copies].map(([name, copy]) => [
        name,
        { size: copy.size, mode: copy.mode, sha256: copy.sha256, modifiedMs: copies.get(name)?.modifiedMs },
      ]),
    );
    choice = lostWrite({
      governing,
      owners: user.owners,
      preference: user.preference,
      reachable,
      copies: hashedCopies,
    });
    if (!choice) return false;
    // A refused write the gateway is still putting back on record (Redis was unreachable at the refusal) looks just
    // like this: bytes younger than the grace wait for a later scan, which finds its intent (row I2) or adopts them.
    const youngestMs = Math.max(...choice.holders.map((name) => hashedCopies.get(name)?.modifiedMs ?? 0));
    if (youngestMs > Date.now() - ctx.lostWriteGraceMs) {
      leaveToPipeline(ctx, user);
      return true;
    }
    const file = { sha256: choice.sha256, size: choice.size, mode: choice.mode, holders: choice.holders };
    version = await ctx.manifest.commitWrite(charmId, path, file, lock);
  } finally {
    await lock.release();
  }
  ctx.recorder.stats.lostWritesRecovered++;
  ctx.recorder.finding({
    charmId,
    path,
    problem: `newer than the manifest's ${governing.kind === 'file' ? 'version' : 'delete'} on a quorum`,
    action: `recovered as v${version}`,
    detail: `sha256 ${choice.sha256.slice(0, 12)}…, ${choice.size} bytes, held by ${choice.holders.join(', ')}, written after v${governing.version} was committed: an acknowledged write the manifest lost`,
  });
  const { sha256, size, mode, holders } = choice;
  const entry = { kind: 'file' as const, version, sha256, size, mode, holders, atMs: Date.now() };
  await applyToNewVersion(ctx, user, path, entry, { copies: hashedCopies, reachable }, s3);
  return true;
}
