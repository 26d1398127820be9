/**
 * Table rows P2–P4 (no entry governs the path): a file the manifest does not know is live, adopted and never deleted,
 * unless only the bucket holds it (kept, not restored: the backends agree it does not exist) or a write intent
 * is open at it (bytes nobody acknowledged). Under the path lock (a write in flight holds it until it is
 * recorded) the copies are hashed and `chooseAdoption` (`plan.ts`) picks the bytes recorded as a new version,
 * held by the backends that have them; then the owners and the bucket that lack them get repairs.
 */

import { S3_TARGET } from '@cring/jobs';
import type { FileEntry, PathLock } from '@cring/manifest';
import { applyToNewVersion } from './apply-verdict.ts';
import { type HashedCopies, hashCopies } from './path-copies.ts';
import { type AdoptionChoice, type Copy, chooseAdoption, type S3State } from './plan.ts';
import { leaveToPipeline, lockOrReport, type ScanContext, type UserScan } from './scan-context.ts';

export async function adoptUnknownPath(
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
  let hashed: HashedCopies;
  let choice: AdoptionChoice | undefined;
  try {
    if (
      lock &&
      ((await ctx.manifest.governing(charmId, path)) || (await ctx.manifest.intent(charmId, path)))
    ) {
      leaveToPipeline(ctx, user);
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
  await applyToNewVersion(ctx, user, path, entry, { copies: hashedCopies, reachable }, s3);
}
