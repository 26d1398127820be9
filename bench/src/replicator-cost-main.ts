import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot } from '@cring/local-cluster';
import { removeRunData, startBenchCluster } from './bench-cluster.ts';
import { type CpuProfile, summarizeCpuProfile } from './cpu-profile-summary.ts';
import { postUpload, runLoad } from './http-load.ts';
import { meterCpu } from './process-cpu.ts';
import { waitForDrain } from './replication-drain.ts';
import { BACKEND_HOST_PROCESS } from './results-table.ts';
import { createUploadBody } from './upload-body.ts';

/*
 * `npm run profile:replicator -w @cring/bench`: what one small replication job costs. The replicator is paused
 * (SIGSTOP) while N 4 KiB files are written through the gateway, then resumed; the CPU every process spends until
 * the backlog is drained, divided by the 2·N jobs (the copy to the third owner and the S3 backup of each write),
 * is the cost per job. The gateway runs with CRING_REMAINING_COPIES=false here, so that every copy is a job: this
 * measures the replicator's path (large bodies, failed copies, repairs); the bench's rows measure the default.
 * With PROFILE=true the replicator runs under --cpu-prof and its self time is summarized;
 * CRING_REPLICATOR_CONCURRENCY=n restarts it with that many jobs at once per queue. STEADY=true instead keeps the
 * replicator running while the files are written one at a time (each job then arrives alone, as in the bench's c=1
 * upload row), and meters the writes and the drain together. SIZE_KIB sets the files' size (default 4).
 */

const WRITES = Number(process.env.WRITES ?? 400);
// SIZE_KIB=1024: the jobs of 1 MiB writes instead (where the cost is the bytes, not the job).
const SIZE_BYTES = Number(process.env.SIZE_KIB ?? 4) * 1024;
const STEADY = process.env.STEADY === 'true';

async function main(): Promise<number> {
  const runDir = join(repoRoot, '.cring', 'bench', 'replicator-run');
  const profileDir = join(repoRoot, '.cring', 'bench', 'profiles');
  rmSync(runDir, { recursive: true, force: true });
  const profile = process.env.PROFILE === 'true';
  // Unconfined when profiling: under Node's permission model --cpu-prof writes no profile at all.
  const bench = await startBenchCluster({
    runDir,
    confineCentral: !profile,
    appEnv: { CRING_REMAINING_COPIES: 'false' }, // every copy a job
  });
  try {
    const body = createUploadBody(SIZE_BYTES, randomBytes(Math.min(SIZE_BYTES, 64 * 1024)));
    const token = bench.token();
    const write = (round: string, n: number, concurrency = 16) =>
      runLoad({
        concurrency,
        operations: n,
        operation: (i) => postUpload(bench.endpoints.gateway, `/rep/${round}/${i}`, token, body),
      });
    await write('warm', 64);
    await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 120_000 });
    const concurrency = process.env.CRING_REPLICATOR_CONCURRENCY;
    // The cluster's own flags stay (its young-generation size shapes the GC work a profile shows).
    const clusterNodeOptions = bench.replicator.spec.env?.NODE_OPTIONS ?? '';
    if (profile || concurrency) {
      mkdirSync(profileDir, { recursive: true });
      bench.replicator.spec.env = {
        ...bench.replicator.spec.env,
        ...(concurrency ? { CRING_REPLICATOR_CONCURRENCY: concurrency } : {}),
        NODE_OPTIONS: profile
          ? `${clusterNodeOptions} --cpu-prof --cpu-prof-dir=${profileDir} --cpu-prof-name=replicator-small-jobs.cpuprofile`.trim()
          : clusterNodeOptions,
      };
      await bench.replicator.restart();
      await write('warm2', 64);
      await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 120_000 });
    }
    let written: number;
    let cpu: ReturnType<typeof meterCpu>;
    let fromUs: number;
    let started: number;
    if (STEADY) {
      cpu = meterCpu(bench.processes());
      started = performance.now();
      fromUs = Number(process.hrtime.bigint() / 1000n);
      const result = await write('run', WRITES, 1);
      written = result.timings.length;
      if (result.errors) console.error(`${result.errors} writes failed: ${result.firstError}`);
    } else {
      bench.replicator.kill('SIGSTOP');
      try {
        const result = await write('run', WRITES);
        written = result.timings.length;
        if (result.errors) console.error(`${result.errors} writes failed: ${result.firstError}`);
      } finally {
        bench.replicator.kill('SIGCONT');
      }
      cpu = meterCpu(bench.processes());
      started = performance.now();
      fromUs = Number(process.hrtime.bigint() / 1000n);
    }
    const drained = await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 300_000 });
    const toUs = Number(process.hrtime.bigint() / 1000n);
    const seconds = cpu.stop();
    const jobs = 2 * written;
    const perJob = (name: string) => (((seconds[name] ?? 0) * 1000) / jobs).toFixed(2);
    const backends = Object.keys(seconds).filter((n) => BACKEND_HOST_PROCESS.test(n));
    const backendMs = backends.reduce((sum, n) => sum + (seconds[n] ?? 0), 0);
    console.log(
      `${jobs} jobs (${written} writes of ${SIZE_BYTES / 1024} KiB) drained in ${((performance.now() - started) / 1000).toFixed(1)} s` +
        `${drained.drained ? '' : ` (NOT drained: ${drained.left} left)`}`,
    );
    if (STEADY)
      console.log(
        "(steady: one write at a time with the replicator running; gateway, redis and backends include the writes' own work)",
      );
    console.log(
      `CPU ms per job: replicator ${perJob('replicator')}, backends (with agents) ${((backendMs * 1000) / jobs).toFixed(2)}, ` +
        `s3 ${perJob('s3')}, redis ${perJob('redis')}, gateway ${perJob('gateway')}`,
    );
    if (profile) {
      bench.replicator.spec.env = { ...bench.replicator.spec.env, NODE_OPTIONS: clusterNodeOptions };
      await bench.replicator.restart(); // the profile is written when the process exits
      const file = join(profileDir, 'replicator-small-jobs.cpuprofile');
      const summary = summarizeCpuProfile(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, {
        window: { fromUs, toUs },
      });
      for (const c of summary.categories.filter((c) => c.share >= 0.01))
        console.log(`  ${(c.share * 100).toFixed(1).padStart(5)}%  ${c.name}`);
      console.log('  top self time:');
      for (const f of summary.topFunctions.slice(0, 25))
        console.log(`  ${(f.share * 100).toFixed(1).padStart(5)}%  ${f.name} ${f.where}`);
    }
    return 0;
  } finally {
    await bench.stop();
    removeRunData(runDir);
  }
}

process.exit(await main());
