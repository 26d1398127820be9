import { closeSync, mkdirSync, openSync, statSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Listening ports come from below the kernel's ephemeral range (32768-60999 on Linux), so the kernel never gives
// one to an outgoing connection between the moment it is chosen and the moment its server binds it. Several
// launchers run at once (tests run in parallel processes): each port is also reserved across processes with a
// file created exclusively, which expires after an hour.
export const LOW = 10_000;
export const HIGH = 32_000;
// Ports the Fetch standard calls "bad" that fall between LOW and HIGH: fetch() (the probes', the tests' and the
// bench's client) refuses them ("bad port"), so a process given one is never seen ready. free-port.test.ts
// sweeps the range to keep this list whole.
export const FETCH_BAD_PORTS: ReadonlySet<number> = new Set([10_080]);
const RESERVATIONS = join(tmpdir(), 'charmed-ring-ports');
const RESERVATION_MS = 3_600_000;

function reserve(port: number): boolean {
  mkdirSync(RESERVATIONS, { recursive: true });
  const file = join(RESERVATIONS, String(port));
  try {
    closeSync(openSync(file, 'wx'));
    return true;
  } catch {
    try {
      if (Date.now() - statSync(file).mtimeMs < RESERVATION_MS) return false;
      unlinkSync(file); // expired: take it over on the next try
    } catch {
      // another process just took it over
    }
    return false;
  }
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** A free TCP port on 127.0.0.1, reserved for this process (no other launcher gets it within the hour). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 2000; attempt++) {
    const port = LOW + Math.floor(Math.random() * (HIGH - LOW));
    if (FETCH_BAD_PORTS.has(port)) continue;
    if (reserve(port) && (await canBind(port))) return port;
  }
  throw new Error(`no free port between ${LOW} and ${HIGH}`);
}

/** `count` distinct free ports. */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePort());
  return ports;
}
