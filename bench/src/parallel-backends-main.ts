import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '@cring/local-cluster';
import { removeRunData, startBenchCluster } from './bench-cluster.ts';
import { httpEndpoint, postUpload } from './http-load.ts';
import { meterCpu } from './process-cpu.ts';
import { waitForDrain } from './replication-drain.ts';
import { createUploadBody } from './upload-body.ts';

/*
 * `npm run profile:large-uploads -w @cring/bench`: what bounds a large upload through the gateway on one machine.
 * The same body (LARGE_UPLOAD_MIB, default 256) is uploaded three ways, each ROUNDS times: straight to one backend;
 * straight to two backends at once (what the gateway's quorum write asks of the machine, without the gateway);
 * and through the gateway (replicator paused, so only the quorum write runs). Prints MiB/s and the CPU seconds of
 * every process, with the load average, so a slowdown can be told apart: the gateway's own work, or two backends
 * sharing one machine's cores and disk.
 */

const MIB = 1024 * 1024;
const sizeMib = Number(process.env.LARGE_UPLOAD_MIB ?? 256);
const rounds = Number(process.env.ROUNDS ?? 2);

async function main(): Promise<number> {
  const runDir = join(repoRoot, '.cring', 'bench', 'large-uploads-run');
  rmSync(runDir, { recursive: true, force: true });
  const bench = await startBenchCluster({ runDir });
  try {
    const body = createUploadBody(sizeMib * MIB, randomBytes(MIB));
    const token = bench.token();
    const [one, two] = bench.cluster.backends;
    if (!one || !two) throw new Error('the cluster has fewer than two backends');
    const charm1 = bench.endpoints.direct;
    const charm2 = httpEndpoint('charm2', two.info.httpPort);
    let n = 0;
    const path = () => `/large/${Date.now()}-${++n}`;
    // The user exists on every backend once the gateway saw them (account sync before their first request).
    await postUpload(bench.endpoints.gateway, path(), token, createUploadBody(16, Buffer.alloc(16)));
    await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 120_000 });
    const ways: [string, () => Promise<unknown>][] = [
      ['direct to charm1', () => postUpload(charm1, path(), token, body)],
      [
        'direct to charm1 + charm2 at once (each)',
        () => Promise.all([postUpload(charm1, path(), token, body), postUpload(charm2, path(), token, body)]),
      ],
      ['gateway (replicator paused)', () => postUpload(bench.endpoints.gateway, path(), token, body)],
    ];
    console.log(
      `${sizeMib} MiB uploads, ${rounds} rounds, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    for (let round = 1; round <= rounds; round++) {
      for (const [label, run] of ways) {
        const cpu = meterCpu(bench.processes());
        bench.replicator.kill('SIGSTOP');
        const started = performance.now();
        try {
          await run();
        } finally {
          bench.replicator.kill('SIGCONT');
        }
        const seconds = (performance.now() - started) / 1000;
        const used = cpu.stop();
        const busy = Object.entries(used)
          .filter(([, s]) => s >= 0.05)
          .sort((a, b) => b[1] - a[1])
          .map(([name, s]) => `${name} ${s.toFixed(1)}`)
          .join(', ');
        console.log(
          `round ${round} ${label.padEnd(36)} ${(sizeMib / seconds).toFixed(0).padStart(5)} MiB/s (${seconds.toFixed(1)} s) │ CPU s: ${busy}`,
        );
        await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 600_000 });
        bench.removeLeakedUploadFiles();
      }
    }
    console.log(
      `load average afterwards ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    return 0;
  } finally {
    await bench.stop();
    removeRunData(runDir);
  }
}

process.exit(await main());
