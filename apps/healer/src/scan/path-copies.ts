/**
 * What the scan knows of one path's copies: first from the listings, then, where a decision needs it, hashed
 * (every backend copy, or the bucket's object). Hashed bytes and targets that fail are recorded in the report.
 */
import type { BackendClient } from '@cring/charm';
import { S3_TARGET } from '@cring/jobs';
import { type CopyInfo, type HashedCopy, hashBackendCopy, hashS3Object, headS3Object } from './inventory.ts';
import type { Copy, S3State } from './plan.ts';
import { errorMessage, type ScanContext, type UserScan } from './scan-context.ts';

export interface ListedCopies {
  /** Per backend whose listing holds the path. */
  copies: Map<string, Copy>;
  s3: S3State;
  /** The bucket's object, when its listing holds the path. */
  object: { size: number } | undefined;
}

export function listedCopies(user: UserScan, path: string): ListedCopies {
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
  return { copies, s3, object };
}

export type HashedCopies = { copies: Map<string, HashedCopy & { mode: number }>; failed: string[] };

/** Hashes every listed copy of path; a copy that vanished meanwhile is left out, a failing backend reported. */
export async function hashCopies(
  ctx: ScanContext,
  user: UserScan,
  path: string,
  copies: ReadonlyMap<string, CopyInfo>,
): Promise<HashedCopies> {
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

/** The bucket's object read in full: its sha256 metadata ('' when it has none) and the sha256 of its bytes. */
export async function hashedS3State(ctx: ScanContext, charmId: string, path: string): Promise<S3State> {
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
export async function s3WithSha256(ctx: ScanContext, charmId: string, path: string): Promise<S3State> {
  try {
    const head = await headS3Object(ctx.store, charmId, path, ctx.limiter);
    return head ? { state: 'present', size: head.size, sha256: head.sha256 ?? '' } : { state: 'absent' };
  } catch (err) {
    ctx.recorder.unreachable(S3_TARGET, errorMessage(err));
    return { state: 'unreachable' };
  }
}
