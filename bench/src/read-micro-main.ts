import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { repoRoot } from '@cring/local-cluster';
import { removeRunData, startBenchCluster } from './bench-cluster.ts';
import { getDownload, postUpload, runLoad } from './http-load.ts';
import { backendGets } from './http-phases.ts';
import { percentile } from './latency-stats.ts';
import { meterCpu } from './process-cpu.ts';
import { waitForDrain } from './replication-drain.ts';
import { createUploadBody } from './upload-body.ts';

/*
 * `npm run profile:reads -w @cring/bench`: downloads of 4 KiB, 1 MiB and 64 MiB at c=1 and c=16, direct, through
 * the TCP pass-through and through the gateway, two rounds back to back, with the gateway's CPU per download.
 * READ_SIZES=4096,1048576 picks sizes. A quick look at the read path between full bench runs.
 */
const runDir = join(repoRoot, '.cring', 'bench', 'read-micro-run');
const bench = await startBenchCluster({ runDir });
const ctx = { bench, block: Buffer.alloc(0), drainTimeoutMs: 0, log: () => {} };
try {
  const block = randomBytes(1024 * 1024);
  const sizes = (process.env.READ_SIZES ?? '4096,1048576,67108864').split(',').map(Number);
  for (const bytes of sizes)
    await postUpload(bench.endpoints.gateway, `/rm/${bytes}`, bench.token(), createUploadBody(bytes, block));
  await waitForDrain(bench.manifest, bench.charmId, { timeoutMs: 120_000 });
  const token = bench.token();
  for (const round of [1, 2]) {
    for (const bytes of sizes) {
      for (const concurrency of [1, 16]) {
        const n = bytes === 4096 ? 600 : bytes === 1024 * 1024 ? 100 : 16;
        const line: string[] = [];
        for (const path of ['direct', 'tcp-proxy', 'gateway'] as const) {
          const gets = path === 'gateway' ? await backendGets(ctx) : undefined;
          const cpu = meterCpu(bench.processes());
          const r = await runLoad({
            concurrency,
            operations: n,
            operation: () => getDownload(bench.endpoints[path], `/rm/${bytes}`, token, bytes),
          });
          const c = cpu.stop();
          const after = gets ? await backendGets(ctx) : undefined;
          const spread = after
            ? [...after].map(([name, count]) => `${name} ${count - (gets?.get(name) ?? 0)}`).join(' ')
            : '';
          const lat = r.timings.map((t) => t.latencyMs);
          line.push(
            `${path} ${(r.timings.length / (r.wallMs / 1000)).toFixed(0)}/s p50 ${percentile(lat, 50).toFixed(2)}${path === 'gateway' ? ` gwcpu ${(((c.gateway ?? 0) * 1000) / n).toFixed(2)}ms/op [${spread}]` : ''}${r.errors ? ` ERR ${r.firstError}` : ''}`,
          );
        }
        console.log(`r${round} ${bytes} c${concurrency}: ${line.join(' | ')}`);
      }
    }
  }
} finally {
  await bench.stop();
  removeRunData(runDir);
}
process.exit(0);
