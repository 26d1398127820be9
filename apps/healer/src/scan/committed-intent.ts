/**
 * Table rows I4 and I5 (checked before I2 rolls an abandoned intent back): Redis lost an acknowledged commit of the
 * path (restored from an older copy). Replicate and backup jobs are only enqueued after a commit, so these prove
 * one happened:
 *
 * - I4, the intent's own write was committed: an untouched owner holds bytes that differ from the intent's
 *   `previous` and equal the bytes on a touched backend (only a replicate job of that commit can have put them
 *   there); or the bucket's current object carries a touched backend's bytes (sha256) with a backup version newer
 *   than the intent was opened (versions are never below the commit's time in ms) and newer than `previous`.
 * - I5, an earlier write, lost too, is the last acknowledged state (a write refused, its intent `failed`, opened
 *   over the stale entry Redis came back with): an untouched owner holds bytes other than `previous`, and the
 *   bucket's current object carries them with a backup version newer than `previous`.
 *
 * Rolling back to `previous` would then replace an acknowledged write (or, once the untouched owner holds it, never
 * finish). Without such evidence the bytes on the touched backends look exactly like a refused write's, and I2
 * rolls back.
 */
import type { BackendClient } from '@cring/charm';
import type { WriteIntent } from '@cring/manifest';
import { type HashedCopy, hashBackendCopy } from './inventory.ts';
import type { ScanContext } from './scan-context.ts';

export interface CommittedBytes {
  /** `committed`: the intent's own write (I4); `newer-previous`: the last acknowledged state to roll back to (I5). */
  kind: 'committed' | 'newer-previous';
  /** The manifest version the bucket's backup names (I5). */
  version?: number;
  sha256: string;
  size: number;
  mode: number;
  /** Every backend that holds these bytes, in the user's preference order. */
  holders: string[];
  /** What proved the commit, for the report. */
  evidence: string;
}

/** The acknowledged bytes a backend or the bucket proves the manifest lost (see the rows above); else undefined. */
export async function lostAcknowledgedBytesOf(
  ctx: ScanContext,
  charmId: string,
  intent: WriteIntent,
): Promise<CommittedBytes | undefined> {
  if (intent.touched.length === 0) return undefined;
  const preference = ctx.ring.preferenceList(charmId, ctx.backendNames.length);
  const owners = preference.slice(0, ctx.replicationFactor);
  const untouchedOwners = owners.filter((owner) => !intent.touched.includes(owner));
  const copies = await hashedCopiesOf(
    ctx,
    charmId,
    intent.path,
    preference.filter((name) => intent.touched.includes(name) || untouchedOwners.includes(name)),
  );
  const previousSha256 = intent.previous?.kind === 'file' ? intent.previous.sha256 : undefined;
  const onTouched = (sha256: string) => intent.touched.some((name) => copies.get(name)?.sha256 === sha256);
  const committed = (
    copy: HashedCopy,
    evidence: string,
    kind: CommittedBytes['kind'] = 'committed',
  ): CommittedBytes => ({
    kind,
    sha256: copy.sha256,
    size: copy.size,
    mode: copy.mode ?? (intent.previous?.kind === 'file' ? intent.previous.mode : 0o644),
    holders: preference.filter((name) => copies.get(name)?.sha256 === copy.sha256),
    evidence,
  });

  for (const owner of untouchedOwners) {
    const copy = copies.get(owner);
    if (copy && copy.sha256 !== previousSha256 && onTouched(copy.sha256))
      return committed(copy, `untouched owner ${owner} holds the same bytes as the touched backends`);
  }
  const backup = await ctx.store.head(charmId, intent.path).catch(() => undefined);
  if (
    backup?.sha256 &&
    backup.version !== undefined &&
    backup.version > intent.atMs &&
    backup.version > (intent.previous?.version ?? 0) &&
    backup.sha256 !== previousSha256 &&
    onTouched(backup.sha256)
  ) {
    const copy = [...copies.values()].find((c) => c.sha256 === backup.sha256) as HashedCopy;
    return committed(copy, `the bucket holds them as backup v${backup.version}, taken after the intent`);
  }
  const newer = untouchedOwners.find((owner) => {
    const sha256 = copies.get(owner)?.sha256;
    return sha256 !== undefined && sha256 !== previousSha256 && sha256 === backup?.sha256;
  });
  // Only a write its own writer declared failed: an intent still `writing` may be an acknowledged write whose
  // commit and jobs were lost (its bytes on the touched backends are then the newest acknowledged ones).
  if (
    intent.state === 'failed' &&
    newer &&
    backup?.version !== undefined &&
    backup.version > (intent.previous?.version ?? 0)
  ) {
    const bytes = committed(
      copies.get(newer) as HashedCopy,
      `untouched owner ${newer} and the bucket (backup v${backup.version}) hold a version newer than the intent's previous`,
      'newer-previous',
    );
    return { ...bytes, version: backup.version };
  }
  return undefined;
}

/** The hashed copy of path on each named backend that holds one (with its mode); a failing backend is left out. */
async function hashedCopiesOf(
  ctx: ScanContext,
  charmId: string,
  path: string,
  names: readonly string[],
): Promise<Map<string, HashedCopy>> {
  const hashed = await Promise.all(
    names.map(async (name) => {
      const client = ctx.clients.get(name) as BackendClient | undefined;
      if (!client) return undefined;
      const copy = await hashBackendCopy(client, charmId, path, ctx.limiter).catch(() => undefined);
      return copy && ([name, copy] as const);
    }),
  );
  return new Map(hashed.filter((entry) => entry !== undefined));
}
