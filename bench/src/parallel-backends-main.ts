import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '@cring/local-cluster';
import { removeRunData, startBenchCluster } from './bench-cluster.ts';
import { httpEndpoint, postUpload } from './http-load.ts';
import { meterStorage } from './page-cache.ts';
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
    interface Way {
      label: string;
      run: () => Promise<unknown>;
      /** Before and after the measured upload (not measured). */
      setUp?: () => Promise<void>;
      tearDown?: () => Promise<void>;
    }
    const ways: Way[] = [
      { label: 'direct to charm1', run: () => postUpload(charm1, path(), token, body) },
      {
        label: 'direct to charm1 + charm2 at once (each)',
        run: () =>
          Promise.all([postUpload(charm1, path(), token, body), postUpload(charm2, path(), token, body)]),
      },
      {
        label: 'gateway (replicator paused)',
        run: () => postUpload(bench.endpoints.gateway, path(), token, body),
      },
    ];
    // LARGE_UPLOAD_MEMORY_SPOOL=true: also a gateway holding the body in memory instead of its spool file (an
    // experiment only: RSS grows by the body), to tell the spool's disk writes from the rest.
    if (process.env.LARGE_UPLOAD_MEMORY_SPOOL === 'true') {
      ways.push({
        label: 'gateway, spool in memory (experiment)',
        run: () => postUpload(bench.endpoints.gateway, path(), token, body),
        setUp: () => bench.restartGateway({ CRING_SPOOL_MEMORY_BYTES: String(2 * sizeMib * MIB) }),
        tearDown: () => bench.restartGateway(),
      });
    }
    console.log(
      `${sizeMib} MiB uploads, ${rounds} rounds, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
    );
    for (let round = 1; round <= rounds; round++) {
      for (const { label, run, setUp, tearDown } of ways) {
        await setUp?.();
        const cpu = meterCpu(bench.processes());
        const storage = meterStorage(bench.processes());
        bench.replicator.kill('SIGSTOP');
        const started = performance.now();
        try {
          await run();
        } finally {
          bench.replicator.kill('SIGCONT');
        }
        const seconds = (performance.now() - started) / 1000;
        console.log(
          `round ${round} ${label.padEnd(36)} ${(sizeMib / seconds).toFixed(0).padStart(5)} MiB/s (${seconds.toFixed(1)} s) │ CPU s: ${busiest(cpu.stop())} │ ${disk(storage.stop())}`,
        );
        // The replication that follows (third owner, S3), apart: what the same upload costs the machine afterwards.
        const drainCpu = meterCpu(bench.processes());
        const drainStorage = meterStorage(bench.processes());
        const drainStarted = performance.now();
        await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 600_000 });
        const drained = busiest(drainCpu.stop());
        if (drained) {
          const drainSeconds = (performance.now() - drainStarted) / 1000;
          console.log(
            `round ${round} ${'  then its replication'.padEnd(36)} (${drainSeconds.toFixed(1)} s) │ CPU s: ${drained} │ ${disk(drainStorage.stop())}`,
          );
        }
        bench.removeLeakedUploadFiles();
        await tearDown?.();
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

/** MiB each process wrote to the page cache (for the disk), and the machine's peak of not yet written MiB. */
function disk(used: { writtenBytes: Record<string, number>; peakUnwrittenBytes: number }): string {
  const written = Object.entries(used.writtenBytes)
    .filter(([, bytes]) => bytes >= MIB)
    .sort((a, b) => b[1] - a[1])
    .map(([name, bytes]) => `${name} ${(bytes / MIB).toFixed(0)}`)
    .join(', ');
  return `written MiB: ${written || 'none'}; unwritten peak ${(used.peakUnwrittenBytes / MIB).toFixed(0)} MiB`;
}

/** Processes that used at least 0.05 CPU seconds, busiest first. */
function busiest(used: Record<string, number>): string {
  return Object.entries(used)
    .filter(([, s]) => s >= 0.05)
    .sort((a, b) => b[1] - a[1])
    .map(([name, s]) => `${name} ${s.toFixed(1)}`)
    .join(', ');
}

process.exit(await main());
