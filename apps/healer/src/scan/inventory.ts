/**
 * What one user has where: the file tree on a backend (its `walkFiles`) and the objects in the S3 bucket, and the
 * sha256 of one copy, streamed. Every backend and S3 request first takes a token from the scan's rate limiter.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { BackupStore } from '@cring/backup-store';
import { type BackendClient, BackendHttpError } from '@cring/charm';
import type { RateLimiter } from './rate-limiter.ts';

export interface CopyInfo {
  size: number;
  /** Go FileMode as the listing reports it (e.g. 420). */
  mode: number;
  /** When the backend last wrote the file (its listing's modtime); survives whatever Redis loses. */
  modifiedMs?: number;
}

export type BackendListing =
  | { state: 'listed'; files: Map<string, CopyInfo>; userMissing: boolean }
  | { state: 'unreachable'; reason: string };

export type S3Listing =
  | { state: 'listed'; objects: Map<string, { size: number }> }
  | { state: 'unreachable'; reason: string };

export interface HashedCopy {
  sha256: string;
  size: number;
  /** The copy's mode, when the backend gave it with the bytes. */
  mode?: number;
}

// ListObjectsV2 answers at most this many keys per request.
const S3_PAGE_SIZE = 1000;

/** The parent directories of a rooted path, outermost first, without `/`: `/a/b/f` → [`/a`, `/a/b`]. */
function parentDirsOf(path: string): string[] {
  const segments = path.split('/').slice(1, -1);
  return segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`);
}

/**
 * Every file of the user on one backend. walkFiles lists each directory with one request, lazily: a token is
 * taken for the root and for each directory the walk reveals before the next one is read (directories with no
 * file anywhere below are not counted). A backend that does not know the user holds nothing for them.
 */
export async function listBackend(
  client: BackendClient,
  charmId: string,
  limiter: RateLimiter,
): Promise<BackendListing> {
  const files = new Map<string, CopyInfo>();
  const seenDirs = new Set<string>();
  try {
    await limiter.take();
    for await (const file of client.walkFiles(charmId)) {
      files.set(file.path, { size: file.size, mode: file.mode, modifiedMs: file.modifiedMs });
      for (const dir of parentDirsOf(file.path)) {
        if (seenDirs.has(dir)) continue;
        seenDirs.add(dir);
        await limiter.take();
      }
    }
    return { state: 'listed', files, userMissing: false };
  } catch (err) {
    if (err instanceof BackendHttpError && err.missingUser)
      return { state: 'listed', files, userMissing: true };
    return { state: 'unreachable', reason: (err as Error).message };
  }
}

export async function listS3(store: BackupStore, charmId: string, limiter: RateLimiter): Promise<S3Listing> {
  const objects = new Map<string, { size: number }>();
  try {
    await limiter.take();
    for await (const object of store.list(charmId)) {
      objects.set(object.path, { size: object.size });
      if (objects.size % S3_PAGE_SIZE === 0) await limiter.take();
    }
    return { state: 'listed', objects };
  } catch (err) {
    return { state: 'unreachable', reason: (err as Error).message };
  }
}

async function hashStream(body: Readable): Promise<HashedCopy> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    hash.update(chunk as Buffer);
  }
  return { sha256: hash.digest('hex'), size };
}

/** The sha256 and size of the bytes a backend holds at path; undefined when the file is gone. */
export async function hashBackendCopy(
  client: BackendClient,
  charmId: string,
  path: string,
  limiter: RateLimiter,
): Promise<HashedCopy | undefined> {
  await limiter.take();
  const file = await client.getFile(charmId, path);
  if (!file) return undefined;
  try {
    const hashed = await hashStream(file.body);
    return file.mode === undefined ? hashed : { ...hashed, mode: file.mode };
  } finally {
    file.body.destroy();
  }
}

/** What the bucket says about an object (its sha256 metadata), without reading it. */
export async function headS3Object(
  store: BackupStore,
  charmId: string,
  path: string,
  limiter: RateLimiter,
): Promise<{ size: number; sha256?: string } | undefined> {
  await limiter.take();
  const head = await store.head(charmId, path);
  return head && { size: head.size, ...(head.sha256 ? { sha256: head.sha256 } : {}) };
}

/** The object's sha256 metadata and the sha256 of its bytes, read in full. */
export async function hashS3Object(
  store: BackupStore,
  charmId: string,
  path: string,
  limiter: RateLimiter,
): Promise<{ size: number; sha256?: string; hashed: HashedCopy } | undefined> {
  await limiter.take();
  const object = await store.get(charmId, path);
  if (!object) return undefined;
  try {
    const hashed = await hashStream(object.body);
    return { size: hashed.size, ...(object.sha256 ? { sha256: object.sha256 } : {}), hashed };
  } finally {
    object.body.destroy();
  }
}
