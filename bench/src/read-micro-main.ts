import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
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
 * READ_SIZES=4096,1048576 picks sizes, READ_ROUNDS=1 the rounds. Each line ends with the throughput ratios to
 * direct and the 1-minute load average. A quick look at the read path between full bench runs.
 */
/** The gateway's read pool per backend from its metrics: connections opened so far / idle now. */
async function readPool(context: { bench: { cluster: { gatewayPorts: { adminPort: number } } } }) {
  const url = `http://127.0.0.1:${context.bench.cluster.gatewayPorts.adminPort}/metrics`;
  const text = await (await fetch(url)).text();
  const opened = [
    ...text.matchAll(/^cring_backend_read_connections_opened_total\{backend="([^"]+)"[^}]*\} (\d+)/gm),
  ];
  const idle = new Map(
    [...text.matchAll(/^cring_backend_read_connections\{backend="([^"]+)",state="idle"[^}]*\} (\d+)/gm)].map(
      (m) => [m[1], m[2]],
    ),
  );
  return opened.map((m) => `${m[1]} ${m[2]}/${idle.get(m[1]) ?? 0}`).join(' ') || '-';
}

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
  const rounds = Number(process.env.READ_ROUNDS ?? 2);
  for (let round = 1; round <= rounds; round++) {
    for (const bytes of sizes) {
      for (const concurrency of [1, 16]) {
        const n = bytes === 4096 ? 600 : bytes === 1024 * 1024 ? 100 : 16;
        const line: string[] = [];
        const rate: Record<string, number> = {};
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
          const pool = path === 'gateway' ? ` pool ${await readPool(ctx)}` : '';
          const spread = after
            ? [...after].map(([name, count]) => `${name} ${count - (gets?.get(name) ?? 0)}`).join(' ')
            : '';
          const lat = r.timings.map((t) => t.latencyMs);
          rate[path] = r.timings.length / (r.wallMs / 1000);
          // CPU ms per download of the process in the path (the hop itself; backends summed).
          const perOp = (seconds: number | undefined) => (((seconds ?? 0) * 1000) / n).toFixed(2);
          const backendsCpu = Object.entries(c)
            .filter(([name]) => name.startsWith('charm'))
            .reduce((sum, [, seconds]) => sum + seconds, 0);
          const hopCpu =
            path === 'gateway'
              ? ` gwcpu ${perOp(c.gateway)}ms/op rds ${perOp(c.redis)}`
              : path === 'tcp-proxy'
                ? ` proxycpu ${perOp(c['tcp-proxy'])}ms/op`
                : '';
          line.push(
            `${path} ${(rate[path] as number).toFixed(0)}/s p50 ${percentile(lat, 50).toFixed(2)}${hopCpu} be ${perOp(backendsCpu)}${path === 'gateway' ? ` [${spread}]${pool}` : ''}${r.errors ? ` ERR ${r.firstError}` : ''}`,
          );
        }
        const ratio = (path: string) => ((rate[path] ?? 0) / (rate.direct ?? 1)).toFixed(2);
        line.push(`gw ${ratio('gateway')}x tcp ${ratio('tcp-proxy')}x load ${loadavg()[0]?.toFixed(1)}`);
        console.log(`r${round} ${bytes} c${concurrency}: ${line.join(' | ')}`);
      }
    }
  }
} finally {
  await bench.stop();
  removeRunData(runDir);
}
process.exit(0);
