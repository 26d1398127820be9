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
