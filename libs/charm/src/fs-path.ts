/**
 * Paths of `/v1/fs/*` as the charm server sees them. The server (Go net/http + goji) routes on the request's
 * escaped path, takes the wildcard remainder (always starting with `/`), applies `filepath.Clean` and stores the
 * file under that name without decoding `%xx`. These functions reproduce that, so the same file has one key.
 */

const FS_ROUTE_PREFIX = '/v1/fs/';

/** Go `path.Clean` for a rooted path: no `//`, `.` or `..` segments, no trailing `/`, never above `/`. */
export function cleanFsPath(raw: string): string {
  const kept: string[] = [];
  for (const segment of raw.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') kept.pop();
    else kept.push(segment);
  }
  return `/${kept.join('/')}`;
}

/**
 * The cleaned fs path and the query of a raw request URL (origin form like `/v1/fs//a/../b?mode=420`, or absolute
 * form). Undefined when the URL is not a `/v1/fs/` route or has a bad `%` escape (the server answers 400 to those).
 */
export function fsPathFromUrl(url: string): { path: string; query: URLSearchParams } | undefined {
  const target = url.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?]*/, '');
  const queryStart = target.indexOf('?');
  const rawPath = queryStart === -1 ? target : target.slice(0, queryStart);
  const escapedPath = goEscapedPath(rawPath);
  if (escapedPath === undefined || !escapedPath.startsWith(FS_ROUTE_PREFIX)) return undefined;
  return {
    path: cleanFsPath(escapedPath.slice(FS_ROUTE_PREFIX.length - 1)),
    query: new URLSearchParams(queryStart === -1 ? '' : target.slice(queryStart + 1)),
  };
}

/** True when `path` is `prefix` or below it (`/a/b` is within `/a`, `/ab` is not). Both are cleaned first. */
export function isWithin(path: string, prefix: string): boolean {
  const cleanPath = cleanFsPath(path);
  const cleanPrefix = cleanFsPath(prefix);
  if (cleanPrefix === '/' || cleanPath === cleanPrefix) return true;
  return cleanPath.startsWith(`${cleanPrefix}/`);
}

/** `/`, each ancestor, then the path itself: `/a/b` → [`/`, `/a`, `/a/b`]. */
export function ancestorsOf(path: string): string[] {
  const clean = cleanFsPath(path);
  if (clean === '/') return ['/'];
  const segments = clean.slice(1).split('/');
  return ['/', ...segments.map((_, i) => `/${segments.slice(0, i + 1).join('/')}`)];
}

// Bytes Go's url package leaves unescaped in a path (its `shouldEscape(c, encodePath)` is false).
const GO_PATH_UNESCAPED = /^[A-Za-z0-9\-._~$&+,/:;=@]$/;
// Bytes Go accepts in a raw path as already escaped (`validEncoded`): the above plus these and `%`.
const GO_VALID_ENCODED_PATH = /^[A-Za-z0-9\-._~$&+,/:;=@!'()*[\]%]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

/**
 * Go's `URL.EscapedPath()` for a raw request path: the raw path itself when it is a valid escaped form, otherwise
 * the decoded path escaped again (so `/a"b` is stored as `a%22b`, and in that case `%41` becomes `A`).
 * Undefined on a malformed `%` escape. Characters above U+007F count as their UTF-8 bytes.
 */
export function goEscapedPath(rawPath: string): string | undefined {
  if (BAD_ESCAPE.test(rawPath)) return undefined;
  if (GO_VALID_ENCODED_PATH.test(rawPath)) return rawPath;
  const decoded = decodePercentBytes(rawPath);
  let escaped = '';
  for (const byte of decoded) {
    const char = String.fromCharCode(byte);
    escaped += GO_PATH_UNESCAPED.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return escaped;
}

function decodePercentBytes(value: string): Uint8Array {
  const bytes: number[] = [];
  const utf8 = Buffer.from(value, 'utf8');
  for (let i = 0; i < utf8.length; i++) {
    const byte = utf8[i] as number;
    if (byte === 0x25 /* % */) {
      bytes.push(Number.parseInt(utf8.subarray(i + 1, i + 3).toString('latin1'), 16));
      i += 2;
    } else {
      bytes.push(byte);
    }
  }
  return Uint8Array.from(bytes);
}
