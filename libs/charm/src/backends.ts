/** One configured Charm server (`charm serve`). `name` is its identity on the ring; URLs may change. */
export interface Backend {
  name: string;
  httpUrl: string;
  sshHost: string;
  sshPort: number;
}

const DEFAULT_SSH_PORT = 35353;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * Parses `CRING_BACKENDS`: comma-separated `name=httpUrl[|sshHost:sshPort]`, e.g.
 * `charm1=http://charm1:35354|charm1:35353,charm2=http://charm2:35354`. The SSH address defaults to the HTTP
 * host on port 35353. The order is the configured order (account primary first).
 */
export function parseBackends(value: string): Backend[] {
  const entries = value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0)
    throw new Error('no backends: expected name=httpUrl[|sshHost:sshPort], comma-separated');
  const backends = entries.map((entry): Backend => {
    const eq = entry.indexOf('=');
    const name = entry.slice(0, eq);
    const [httpPart, sshPart] = entry.slice(eq + 1).split('|');
    if (eq <= 0 || !NAME.test(name) || !httpPart) {
      throw new Error(`backend "${entry}": expected name=httpUrl[|sshHost:sshPort]`);
    }
    let url: URL;
    try {
      url = new URL(httpPart);
    } catch {
      throw new Error(`backend ${name}: "${httpPart}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`backend ${name}: the HTTP URL must start with http:// or https://`);
    }
    let sshHost = url.hostname;
    let sshPort = DEFAULT_SSH_PORT;
    if (sshPart) {
      const colon = sshPart.lastIndexOf(':');
      sshHost = colon > 0 ? sshPart.slice(0, colon) : sshPart;
      sshPort = colon > 0 ? Number(sshPart.slice(colon + 1)) : DEFAULT_SSH_PORT;
      if (!Number.isInteger(sshPort) || sshPort <= 0 || sshPort > 65535) {
        throw new Error(`backend ${name}: bad SSH port in "${sshPart}"`);
      }
    }
    return { name, httpUrl: url.origin, sshHost, sshPort };
  });
  const names = new Set<string>();
  for (const backend of backends) {
    if (names.has(backend.name)) throw new Error(`backend name ${backend.name} is used twice`);
    names.add(backend.name);
  }
  return backends;
}

/** The inverse of parseBackends, for handing the list to child processes. */
export function formatBackends(backends: readonly Backend[]): string {
  return backends.map((b) => `${b.name}=${b.httpUrl}|${b.sshHost}:${b.sshPort}`).join(',');
}
