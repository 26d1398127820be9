import type { BackendClient } from '@cring/charm';
import { type ManifestEntry, rollBackIntent, type WriteIntent } from '@cring/manifest';
import { lostAcknowledgedBytesOf } from './committed-intent.ts';
import { deleteProof } from './lost-delete.ts';
import { lockOrReport, type ScanContext } from './scan-context.ts';

/**
 * Table rows I1–I6 (`apps/healer/README.md`): a write intent whose writer is gone (it gave up, or its lock was
 * lost: killed, frozen, Redis lost) is rolled back on the backends it touched, under the path's lock, then cleared.
 * An intent whose writer still holds its lock is in flight and left alone; one whose write a backend or the bucket
 * proves committed (the commit lost with Redis's tail, row I4: `committed-intent.ts`) is committed again instead,
 * one opened over an entry older than a version the bucket proves acknowledged is rolled back to that (I5), and one
 * under a delete committed since (I2) or one the bucket proves (I6) is rolled back to no file.
 * Returns the paths whose intent stays open: the rest of the scan leaves them alone (never adopts or repairs bytes
 * nobody acknowledged).
 */
export async function resolveAbandonedIntents(ctx: ScanContext, charmId: string): Promise<Set<string>> {
  const open = new Set<string>();
  const stats = ctx.recorder.stats;
  for (const seen of await ctx.manifest.intents(charmId)) {
    if (await ctx.manifest.intentInFlight(charmId, seen)) {
      open.add(seen.path);
      continue;
    }
    if (ctx.options.dryRun) {
      open.add(seen.path);
      stats.intentsLeftOpen++;
      const committed = await lostAcknowledgedBytesOf(ctx, charmId, seen);
      ctx.recorder.finding({
        charmId,
        path: seen.path,
        ...(committed?.kind === 'committed'
          ? {
              problem: 'an acknowledged write the manifest lost, its intent still open',
              action: 'would recover as a new version',
              detail: committed.evidence,
            }
          : {
              problem: 'a write that was never acknowledged',
              action: 'would roll back',
              detail: `touched ${seen.touched.join(', ') || 'no backend'}`,
            }),
      });
      continue;
    }
    const lock = await lockOrReport(ctx, charmId, seen.path);
    if (!lock) {
      open.add(seen.path);
      continue;
    }
    try {
      const intent = await ctx.manifest.intent(charmId, seen.path);
      if (!intent || intent.fence !== seen.fence) continue; // resolved meanwhile (a later write or delete)
      const committed = await lostAcknowledgedBytesOf(ctx, charmId, intent);
      /** Commits acknowledged bytes the manifest lost as a new version (which resolves the intent too), reported. */
      const recover = async (
        bytes: { sha256: string; size: number; mode: number },
        holders: string[],
        problem: string,
        detail: string,
      ) => {
        const { sha256, size, mode } = bytes;
        const version = await ctx.manifest.commitWrite(
          charmId,
          intent.path,
          { sha256, size, mode, holders },
          lock,
        );
        stats.lostWritesRecovered++;
        ctx.recorder.finding({
          charmId,
          path: intent.path,
          problem,
          action: `recovered as v${version}`,
          detail: `sha256 ${sha256.slice(0, 12)}…, ${size} bytes, ${detail}`,
        });
      };
      if (committed?.kind === 'committed') {
        await recover(
          committed,
          committed.holders,
          'an acknowledged write the manifest lost, its intent still open',
          `held by ${committed.holders.join(', ')}: ${committed.evidence}`,
        );
        continue;
      }
      // I5: the last acknowledged state is a newer version the manifest lost; the touched backends go back to it.
      const newer = committed?.kind === 'newer-previous' ? committed : undefined;
      // I2: a change committed since the write began (a directory's delete above it) is the last acknowledged state.
      const since = newer ? undefined : await changeCommittedSince(ctx, charmId, intent);
      // I6: a refused write opened over a version the bucket proves deleted since (Redis restored from before the
      // delete's commit): the touched backends go back to no file, then the delete is recorded again.
      const lostDelete = newer || since ? undefined : await deleteProvenSince(ctx, charmId, intent);
      const target = newer
        ? {
            ...intent,
            previous: {
              kind: 'file' as const,
              version: newer.version ?? 0,
              sha256: newer.sha256,
              size: newer.size,
              mode: newer.mode,
              holders: newer.holders,
              atMs: intent.atMs,
            },
          }
        : since
          ? { ...intent, previous: since }
          : lostDelete
            ? { ...intent, previous: undefined }
            : intent;
      const outcome = await rollBackIntent(
        charmId,
        target,
        (name) => ctx.clients.get(name) as BackendClient | undefined,
        lock,
      );
      if (outcome.failed.length === 0) {
        if (newer) {
          // Recorded only once the touched backends hold it again.
          await recover(
            newer,
            [...new Set([...newer.holders, ...outcome.restored])],
            'an acknowledged write the manifest lost, under a refused write',
            `restored on ${outcome.restored.join(', ') || 'none'}: ${newer.evidence}`,
          );
        } else if (lostDelete) {
          // Recorded only once the touched backends hold no file; the commit clears the intent, P5 the other copies.
          const holders = [...outcome.deleted, ...outcome.unchanged];
          const at = lostDelete.deletedAtMs;
          const version = await ctx.manifest.commitDelete(charmId, intent.path, holders, lock, at);
          stats.lostDeletesRecovered++;
          ctx.recorder.finding({
            charmId,
            path: intent.path,
            problem: `deleted after v${intent.previous?.version} was committed, under a refused write`,
            action: `delete recovered as v${version}`,
            detail: `${lostDelete.evidence}: an acknowledged delete the manifest lost`,
          });
        } else await ctx.manifest.clearIntent(charmId, lock, intent.fence);
        stats.writesRolledBack++;
        ctx.recorder.finding({
          charmId,
          path: intent.path,
          problem: 'a write that was never acknowledged',
          action: 'rolled back',
          detail: `restored ${outcome.restored.join(', ') || 'none'}; deleted ${outcome.deleted.join(', ') || 'none'}`,
        });
      } else {
        open.add(intent.path);
        stats.intentsLeftOpen++;
        ctx.recorder.finding({
          charmId,
          path: intent.path,
          problem: 'a write that was never acknowledged',
          action: 'roll-back unfinished, retried next scan',
          detail: outcome.failed.map((f) => `${f.backend}: ${f.reason}`).join('; '),
        });
      }
    } finally {
      await lock.release().catch(() => {});
    }
  }
  return open;
}

/**
 * The governing entry when it is newer than the one the write began over: a tombstone at or above the path
 * committed after the write began (a delete's commit clears the intents below it, but the gateway may put a refusal
 * Redis lost back on record after that: `refusal-records.ts`), whose state the touched backends go back to. Rolling
 * back to `previous` instead would put deleted bytes back, or never finish when only the touched backends held them.
 */
async function changeCommittedSince(
  ctx: ScanContext,
  charmId: string,
  intent: WriteIntent,
): Promise<ManifestEntry | undefined> {
  const governing = await ctx.manifest.governing(charmId, intent.path);
  if (!governing || governing.version <= (intent.previous?.version ?? 0)) return undefined;
  const { path: _at, ...entry } = governing;
  return entry;
}

/**
 * Row L2's proof for a refused write's previous version (only a `failed` intent: one still writing may be the
 * newest acknowledged write, its commit lost): the bucket's delete marker after it.
 */
async function deleteProvenSince(ctx: ScanContext, charmId: string, intent: WriteIntent) {
  if (intent.state !== 'failed' || intent.previous?.kind !== 'file') return undefined;
  const proof = await deleteProof(ctx, charmId, intent.path, intent.previous);
  return proof.proven ? proof : undefined;
}
