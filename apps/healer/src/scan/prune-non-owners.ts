/**
 * Table row F9 (a copy on a backend that is not an owner): with `--prune` only, and under the path lock, the
 * copies non-owners hold are deleted once every owner verifiably holds the version: each owner's copy is hashed
 * again right before, and nothing is deleted unless all of them match.
 */
import type { BackendClient } from '@cring/charm';
import type { FileEntry } from '@cring/manifest';
import { type HashedCopy, hashBackendCopy } from './inventory.ts';
import {
  errorMessage,
  lockOrReport,
  type ScanContext,
  stillGoverning,
  type UserScan,
} from './scan-context.ts';

export async function pruneNonOwnerCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  entry: FileEntry,
  nonOwners: readonly string[],
): Promise<void> {
  const { charmId } = user;
  const stats = ctx.recorder.stats;
  const pruned = (backend: string) => {
    stats.pruned++;
    const action = ctx.options.dryRun ? 'would prune' : 'pruned';
    ctx.recorder.finding({ charmId, path, target: backend, problem: 'copy on a non-owner', action });
  };
  if (ctx.options.dryRun) {
    for (const backend of nonOwners) pruned(backend);
    return;
  }
  const lock = await lockOrReport(ctx, charmId, path);
  if (!lock) return;
  try {
    const now = await stillGoverning(ctx, charmId, path, entry);
    if (!now) return;
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
      pruned(backend);
    }
  } finally {
    await lock.release();
  }
}
