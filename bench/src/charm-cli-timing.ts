import { performance } from 'node:perf_hooks';
import type { CharmClient } from '@cring/test/harness/charm-cli.ts';

export interface CliTiming {
  cpMs: number[];
  catMs: number[];
  errors: number;
  firstError?: string;
}

/** Time of one CLI run; a wrong `cat` output counts as an error. */
async function timed(run: () => Promise<void>, into: number[], timing: CliTiming): Promise<void> {
  const started = performance.now();
  try {
    await run();
    into.push(performance.now() - started);
  } catch (err) {
    timing.errors++;
    timing.firstError ??= (err as Error).message.split('\n')[0];
  }
}

/**
 * `charm fs cp` then `charm fs cat` of one local file with the real CLI, `iterations` times per client, the
 * clients' runs interleaved so drift (page cache, replication catching up) hits both alike. `between` runs after
 * each client's cp, outside the timing (the bench waits for replication there).
 */
export async function timeCharmCli(options: {
  clients: { name: string; charm: CharmClient; remotePath: string }[];
  localFile: string;
  expected: string;
  iterations: number;
  between?: (client: string) => Promise<void>;
}): Promise<Map<string, CliTiming>> {
  const out = new Map(options.clients.map((c) => [c.name, { cpMs: [], catMs: [], errors: 0 } as CliTiming]));
  const timingOf = (name: string) => out.get(name) as CliTiming;
  for (let i = 0; i < options.iterations; i++) {
    for (const client of options.clients) {
      const timing = timingOf(client.name);
      await timed(
        async () => {
          await client.charm.run(['fs', 'cp', options.localFile, `charm:${client.remotePath}`]);
        },
        timing.cpMs,
        timing,
      );
      await options.between?.(client.name);
    }
    for (const client of options.clients) {
      const timing = timingOf(client.name);
      await timed(
        async () => {
          const { stdout } = await client.charm.run(['fs', 'cat', `charm:${client.remotePath}`]);
          if (stdout !== options.expected) throw new Error(`fs cat returned ${stdout.length} other bytes`);
        },
        timing.catMs,
        timing,
      );
    }
  }
  return out;
}
