import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '@cring/local-cluster';
import { removeRunData, startBenchCluster } from './bench-cluster.ts';
import { postUpload, runLoad } from './http-load.ts';
import { percentile } from './latency-stats.ts';
import { waitForDrain } from './replication-drain.ts';
import { createUploadBody } from './upload-body.ts';

/*
 * `npm run profile:writes -w @cring/bench`: what one upload costs the gateway process alone, in user and system
 * CPU, per size and concurrency, with the replicator paused (SIGSTOP) so its work neither competes for the cores
 * nor counts. ROUNDS (default 2) repeats the whole set, to see the spread; WRITES_SCALE (default 1) scales the
 * number of writes per row. Prints the idle gateway's CPU per second (measured over 5 s: not an event to wait for),
 * then one line per row: writes, p50 latency, gateway CPU ms per write (user + sys).
 */

const ROUNDS = Number(process.env.ROUNDS ?? 2);
const IDLE_MS = 5000;
const SCALE = Number(process.env.WRITES_SCALE ?? 1);
const ROWS = [
  { label: '4 KiB ×1', bytes: 4096, concurrency: 1, writes: 300 },
  { label: '4 KiB ×16', bytes: 4096, concurrency: 16, writes: 800 },
  { label: '1 MiB ×1', bytes: 1024 * 1024, concurrency: 1, writes: 60 },
  { label: '1 MiB ×16', bytes: 1024 * 1024, concurrency: 16, writes: 160 },
];
// USER_HZ: the unit of utime/stime in /proc/<pid>/stat.
const TICKS_PER_SECOND = 100;

function userAndSystemSeconds(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND };
}

async function main(): Promise<number> {
  const runDir = join(repoRoot, '.cring', 'bench', 'write-cost-run');
  const bench = await startBenchCluster({ runDir });
  try {
    const token = bench.token();
    const block = randomBytes(1024 * 1024);
    let round = 0;
    // What the gateway spends with nothing to do (health rounds, timers): a share of every row's figure.
    const idlePid = bench.processes().gateway as number;
    const idleBefore = userAndSystemSeconds(idlePid);
    await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
    const idleAfter = userAndSystemSeconds(idlePid);
    const idleMsPerSecond =
      ((idleAfter.user + idleAfter.system - idleBefore.user - idleBefore.system) * 1000) / (IDLE_MS / 1000);
    console.log(`idle gateway: ${idleMsPerSecond.toFixed(1)} ms CPU per second over ${IDLE_MS / 1000} s`);
    for (let r = 0; r < ROUNDS; r++) {
      for (const row of ROWS) {
        const body = createUploadBody(row.bytes, block);
        const writes = Math.max(1, Math.round(row.writes * SCALE));
        const write = (n: number) =>
          runLoad({
            concurrency: row.concurrency,
            operations: n,
            operation: (i) => postUpload(bench.endpoints.gateway, `/cost/${++round}/${i}`, token, body),
          });
        await write(Math.min(32, writes)); // warm: connections, JIT
        await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 300_000 });
        const pid = bench.processes().gateway as number;
        bench.replicator.kill('SIGSTOP');
        let line: string;
        try {
          const before = userAndSystemSeconds(pid);
          const result = await write(writes);
          const after = userAndSystemSeconds(pid);
          const done = result.timings.length;
          const perWrite = (seconds: number) => ((seconds * 1000) / done).toFixed(2);
          const user = after.user - before.user;
          const system = after.system - before.system;
          const p50 = percentile(
            result.timings.map((t) => t.latencyMs),
            50,
          );
          line =
            `${row.label.padEnd(10)} ${String(done).padStart(4)} writes  p50 ${p50.toFixed(2).padStart(7)} ms  ` +
            `gateway CPU ms/write ${perWrite(user + system).padStart(6)} (user ${perWrite(user)}, sys ${perWrite(system)})` +
            (result.errors ? `  ${result.errors} failed: ${result.firstError}` : '');
        } finally {
          bench.replicator.kill('SIGCONT');
        }
        console.log(line);
        await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 300_000 });
        bench.removeLeakedUploadFiles();
      }
    }
    return 0;
  } finally {
    await bench.stop();
    removeRunData(runDir);
  }
}

process.exit(await main());
