/**
 * Table rows F1–F7 (a file entry governs): gathers the facts `classifyFile` (`plan.ts`) judges a live version by (with
 * `--deep`, every copy and the bucket's object hashed; the object's sha256 metadata fetched when only the bucket
 * could restore it), then `applyVerdict` acts on the verdict.
 */
import type { FileEntry } from '@cring/manifest';
import { applyVerdict } from './apply-verdict.ts';
import { hashCopies, hashedS3State, s3WithSha256 } from './path-copies.ts';
import { type Copy, classifyFile, type S3State } from './plan.ts';
import type { ScanContext, UserScan } from './scan-context.ts';

export async function checkKnownFile(
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
      // The listing's mtime stays: it is what tells an acknowledged newer write from damage (keep-newer).
      if (copy)
        copies.set(name, { ...copies.get(name), size: copy.size, mode: copy.mode, sha256: copy.sha256 });
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
