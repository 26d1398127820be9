import { Redis } from 'ioredis';

/** One command Redis ran, as MONITOR reports it. */
export interface MonitoredCommand {
  atMs: number;
  client: string;
  command: string;
}

/**
 * Records every command Redis runs while `work` runs (MONITOR on a connection of its own), so a request's Redis
 * traffic can be counted on the real processes. Commands of BullMQ's blocking workers are left out by the caller
 * pausing them; the list is in the order Redis ran them.
 */
export async function monitorRedis(url: string, work: () => Promise<void>): Promise<MonitoredCommand[]> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  const monitor = await redis.monitor();
  const seen: MonitoredCommand[] = [];
  let recording = false;
  monitor.on('monitor', (time: string, args: string[], source: string) => {
    if (!recording) return;
    const [name = '', ...rest] = args;
    // Scripts are named by their first line's intent only: their bodies are long.
    const command =
      name.toLowerCase() === 'evalsha' || name.toLowerCase() === 'eval'
        ? `${name} ${rest[0]?.slice(0, 8)} keys=${rest[1]} ${rest.slice(2, 4).join(' ')}`
        : `${name} ${rest.slice(0, 2).join(' ')}`;
    seen.push({ atMs: Number(time) * 1000, client: source, command });
  });
  try {
    recording = true;
    await work();
    await new Promise((resolve) => setTimeout(resolve, 200)); // MONITOR's stream trails the replies
  } finally {
    recording = false;
    monitor.disconnect();
    redis.disconnect();
  }
  return seen;
}

/** Commands a script ran: MONITOR names their source `lua`. */
export const ranByScript = (c: MonitoredCommand) => c.client === 'lua';

/**
 * Round trips as a client waits them: a client's command that follows its previous one (or the last command that
 * one's script ran) by less than `gapMs` was sent with it (a pipeline, or calls made without awaiting each other)
 * and counts with it. Commands run inside scripts belong to the client whose script ran them.
 */
export function roundTrips(commands: readonly MonitoredCommand[], gapMs = 0.05): number {
  let trips = 0;
  const lastAt = new Map<string, number>();
  let scriptOf: string | undefined;
  for (const c of commands) {
    if (ranByScript(c)) {
      if (scriptOf !== undefined) lastAt.set(scriptOf, c.atMs);
      continue;
    }
    const last = lastAt.get(c.client);
    if (last === undefined || c.atMs - last > gapMs) trips++;
    lastAt.set(c.client, c.atMs);
    scriptOf = c.client;
  }
  return trips;
}
