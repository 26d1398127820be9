// Object keys: `<charmId><path>` with a rooted, clean path (`/a/b` → `<charmId>/a/b`), so one user's files share
// the `<charmId>/` prefix and the first key segment names the user.

/** Throws unless path is rooted and clean (no `//`, `.`, `..` or trailing `/`), as `cleanFsPath` returns it. */
export function assertCleanPath(path: string): void {
  if (path === '/') return;
  const segments = path.split('/');
  if (
    segments.length < 2 ||
    segments[0] !== '' ||
    segments.slice(1).some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new TypeError(`backup path must be rooted and clean (like /a/b), got ${JSON.stringify(path)}`);
  }
}

export function keyFor(charmId: string, path: string): string {
  if (charmId === '' || charmId.includes('/')) {
    throw new TypeError(`charm id must be non-empty and without '/', got ${JSON.stringify(charmId)}`);
  }
  assertCleanPath(path);
  return `${charmId}${path}`;
}

/** The rooted path of a key of charmId's (`<charmId>/a/b` → `/a/b`). */
export function pathOfKey(charmId: string, key: string): string {
  return key.slice(charmId.length);
}

const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * When S3 stored an object version or delete marker. versitygw (v1.8.0, posix) lists a noncurrent version with
 * the time it was superseded and a delete marker with the time of the version below it, in whole seconds; its
 * version ids are ULIDs, whose first 10 characters are the creation time in ms. Other servers (AWS, which uses
 * 32-character ids) report the creation time as LastModified.
 */
export function storedAtOf(versionId: string, lastModified: Date | undefined): Date {
  if (ULID.test(versionId)) {
    let ms = 0;
    for (const ch of versionId.slice(0, 10)) ms = ms * 32 + CROCKFORD.indexOf(ch);
    return new Date(ms);
  }
  return lastModified ?? new Date(0);
}
