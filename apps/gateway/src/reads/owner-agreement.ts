/**
 * Reads while the manifest (Redis) is unreachable. No entry says which version is current, and an owner that
 * missed the last overwrite or delete (its repair job not run yet) would serve the old bytes as if they were the
 * file. Nothing can be acknowledged while Redis is away (writes and jobs need it), so the acknowledged state is
 * frozen: it is on at least W backends. A read therefore asks every owner and answers only what at least
 * R = N − W + 1 of them (a read quorum, which meets every write quorum of owners) answer identically; when the
 * owners that answer disagree, or too few answer, the read is refused (503) rather than guessed.
 *
 * | owners' answers                                          | the read answers                                  |
 * | -------------------------------------------------------- | ------------------------------------------------- |
 * | ≥ R answered, all the same (same bytes, same listing, 404) | that answer                                      |
 * | ≥ R answered, not all the same                            | 503: the owners disagree until Redis is back      |
 * | fewer than R answered, at least one did                   | 503: too few owners to tell what is current       |
 * | none answered                                             | the S3 backup (read-only mode), as with Redis up  |
 *
 * Listings are compared by their entries' names, kinds and sizes (modification times differ per backend).
 * An owner the gateway's own unresolved write touched is not asked. A write acknowledged on stand-ins only (two
 * owners down at the time) is not seen by owners' agreement; that case waits for the manifest.
 */
import { createHash } from 'node:crypto';

/** What one owner answered, reduced to what agreement compares. */
export type OwnerAnswer =
  | { backend: string; kind: 'unreachable'; reason: string }
  | { backend: string; kind: 'answer'; status: number; fingerprint: string };

export type Agreement =
  | { kind: 'agreed'; backend: string }
  | { kind: 'refused'; reason: string }
  | { kind: 'none-answered' };

/** Decides what a read may answer from the owners' answers (the table above). */
export function agreedAnswer(answers: readonly OwnerAnswer[], readQuorum: number): Agreement {
  const answered = answers.filter((a) => a.kind === 'answer');
  if (answered.length === 0) return { kind: 'none-answered' };
  if (answered.length < readQuorum) {
    return {
      kind: 'refused',
      reason: `only ${answered.length} of the ${readQuorum} owners needed to tell the current version answered`,
    };
  }
  const first = answered[0] as (typeof answered)[number];
  const same = answered.every((a) => a.status === first.status && a.fingerprint === first.fingerprint);
  if (!same) {
    return {
      kind: 'refused',
      reason: `the owners hold different copies (${answered.map((a) => `${a.backend}: ${a.status}`).join(', ')})`,
    };
  }
  return { kind: 'agreed', backend: first.backend };
}

/** A file's bytes as agreement compares them. */
export const fileFingerprint = (size: number, sha256: string) => `file ${size} ${sha256}`;

/** A listing as agreement compares it: its entries' names, kinds and sizes, in name order (no mtimes). */
export function listingFingerprint(body: Buffer): string {
  try {
    const listing = JSON.parse(body.toString('utf8')) as {
      is_dir?: boolean;
      files?: { name?: string; is_dir?: boolean; size?: number }[];
    };
    const entries = (listing.files ?? [])
      .map((f) => `${f.name}\u0000${f.is_dir ? 'd' : 'f'}\u0000${f.is_dir ? 0 : f.size}`)
      .sort();
    return `listing ${createHash('sha256').update(entries.join('\n')).digest('hex')}`;
  } catch {
    return `raw ${createHash('sha256').update(body).digest('hex')}`;
  }
}

/** Any other answer (404, an error): its status and exact body. */
export const bodyFingerprint = (body: Buffer) => `raw ${createHash('sha256').update(body).digest('hex')}`;
