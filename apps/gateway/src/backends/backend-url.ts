/**
 * The one place that decides where a request to a backend goes: the backend's configured origin plus a path and
 * query that are origin form ("/path?query"). The client's request target never names a host: a target such as
 * `http://169.254.169.254/…` or `//admin:35380/…` is refused at the edge (originFormTarget) and could not leave
 * the backend's origin here either (backendTarget checks again).
 */
import type { Backend } from '@cring/charm';
import { BadRequestError } from '../errors.ts';

/** Where one backend request is sent; `path` goes on the request line exactly as given. */
export interface BackendTarget {
  https: boolean;
  hostname: string;
  port: number;
  /** The Host header: the backend's own authority. */
  host: string;
  path: string;
}

const NOT_A_PATH =
  'send a path ("/v1/…"): absolute URLs, "//host" targets, "host:port" and "*" are not accepted here';

/** True for an origin-form target: one leading slash (a second one would read as "//host" to URL parsers). */
function isOriginForm(target: string): boolean {
  return target.startsWith('/') && !target.startsWith('//') && !/[\s#]/.test(target);
}

/** The client's request target when it is origin form; anything else is a 400 and is never forwarded. */
export function originFormTarget(rawTarget: string | undefined): string {
  const target = rawTarget ?? '';
  if (!isOriginForm(target)) {
    throw new BadRequestError(`the request target "${target.slice(0, 100)}" is not a path: ${NOT_A_PATH}`);
  }
  return target;
}

/** The backend's origin and the given path and query, which must be origin form. */
export function backendTarget(backend: Backend, pathAndQuery: string): BackendTarget {
  if (!isOriginForm(pathAndQuery)) {
    throw new BadRequestError(`refusing to send "${pathAndQuery.slice(0, 100)}" to a backend: ${NOT_A_PATH}`);
  }
  const origin = new URL(backend.httpUrl);
  const https = origin.protocol === 'https:';
  return {
    https,
    hostname: origin.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: Number(origin.port || (https ? 443 : 80)),
    host: origin.host,
    path: pathAndQuery,
  };
}

/** The same as a URL string, for fetch(): the backend's origin followed by the path and query. */
export function backendUrl(backend: Backend, pathAndQuery: string): string {
  const target = backendTarget(backend, pathAndQuery);
  return `${target.https ? 'https' : 'http'}://${target.host}${target.path}`;
}
