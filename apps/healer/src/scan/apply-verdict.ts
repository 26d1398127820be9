/**
 * Table rows F1–F8 (a file entry governs; after an adoption, F1–F7 for the new version): carries out a `FileVerdict` from
 * `plan.ts`. First the holder list (reads prefer holders, so a backend whose copy is gone or wrong stops being
 * named), then one repair job per target, then pruning of non-owner copies when asked for. With `recheck`, the
 * entry is read again first: a version the pipeline replaced during the scan is left to it.
 */

import { fileVersion, S3_TARGET } from '@cring/jobs';
import type { FileEntry } from '@cring/manifest';
import { s3WithSha256 } from './path-copies.ts';
import { type Copy, classifyFile, type FileVerdict, type ProblemKind, type S3State } from './plan.ts';
import { pruneNonOwnerCopies } from './prune-non-owners.ts';
import type { TrackedJob } from './repairs.ts';
import {
  countRepair,
  leaveToPipeline,
  type ScanContext,
  stillGoverning,
  type UserScan,
} from './scan-context.ts';

function countProblem(ctx: ScanContext, kind: ProblemKind): void {
  const stats = ctx.recorder.stats;
  if (kind === 'missing') stats.missing++;
  else if (kind === 'size-mismatch') stats.sizeMismatched++;
  else stats.hashMismatched++;
}

export async function applyVerdict(
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
  if (options.recheck && !dryRun && !(await stillGoverning(ctx, charmId, path, entry))) {
    leaveToPipeline(ctx, user);
    return;
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
  const version = fileVersion(charmId, path, entry);
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
  if (pruning) await pruneNonOwnerCopies(ctx, user, path, entry, verdict.prunable);
}

/** F1–F7 for a version the scan has just committed itself (P4, L1), judged on the copies it hashed to choose it. */
export async function applyToNewVersion(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: FileEntry,
  hashed: { copies: ReadonlyMap<string, Copy>; reachable: ReadonlySet<string> },
  s3: S3State,
): Promise<void> {
  const known = s3.state === 'present' ? await s3WithSha256(ctx, user.charmId, path) : s3;
  const verdict = classifyFile({
    entry,
    owners: user.owners,
    preference: user.preference,
    reachable: hashed.reachable,
    copies: hashed.copies,
    s3: known,
    deep: false,
  });
  await applyVerdict(ctx, user, path, entry, verdict, { recheck: false });
}
