// `npm run dev [-- up|status|stop]`: the local cluster for people. `up` runs in the foreground until Ctrl-C.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { localClusterTopologyFile } from '@cring/config';
import { type ClusterTopology, startCluster, writeTopology } from './cluster.ts';
import { acceptsTcp, answersOk } from './probes.ts';

const topologyFile = localClusterTopologyFile;
const devDir = dirname(topologyFile);

function readTopology(): ClusterTopology | undefined {
  if (!existsSync(topologyFile)) return undefined;
  return JSON.parse(readFileSync(topologyFile, 'utf8')) as ClusterTopology;
}

function isAlive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function up(backendCount: number): Promise<void> {
  const existing = readTopology();
  if (existing && isAlive(existing.launcherPid)) {
    console.error(
      `a local cluster is already running (launcher pid ${existing.launcherPid}); \`npm run dev -- stop\` first`,
    );
    process.exit(2);
  }
  rmSync(join(devDir, 'run'), { recursive: true, force: true });
  console.error(`starting ${backendCount} charm servers with their agents, Redis, S3 and the gateway…`);
  const cluster = await startCluster({ runDir: join(devDir, 'run'), backendCount, withHealer: true });
  const topology = cluster.topology();
  writeTopology(topologyFile, topology);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.error(`\n${signal}: stopping every process…`);
    await cluster.stop();
    rmSync(topologyFile, { force: true });
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));

  const env = Object.entries(topology.clientEnv).map(([key, value]) => `export ${key}=${value}`);
  console.log(
    [
      '',
      'Charmed Ring is running. Point the charm CLI at it:',
      '',
      ...env.map((line) => `  ${line}`),
      `  export CHARM_DATA_DIR=${join(devDir, 'client')}   # optional: a separate identity for this cluster`,
      `  ${topology.charmBin} fs cp ./README.md charm:/README.md && ${topology.charmBin} fs cat charm:/README.md`,
      '',
      `Topology: ${topologyFile}`,
      `Logs:     ${join(topology.runDir, 'logs')}`,
      'Stop:     Ctrl-C here, or `npm run dev -- stop`',
    ].join('\n'),
  );
}

async function status(): Promise<number> {
  const topology = readTopology();
  if (!topology || !isAlive(topology.launcherPid)) {
    console.log('no local cluster is running (start one with `npm run dev`)');
    return 1;
  }
  const rows: Record<string, { pid?: number; address: string; up: boolean }> = {};
  for (const b of topology.backends) {
    rows[b.name] = { pid: b.pid, address: b.httpUrl, up: await answersOk(b.healthUrl).catch(() => false) };
    rows[`agent ${b.name}`] = {
      pid: b.agent.pid,
      address: b.agent.url,
      up: await answersOk(`${b.agent.url}/healthz`).catch(() => false),
    };
  }
  if (topology.gateway) {
    const g = topology.gateway;
    rows.gateway = {
      pid: g.pid,
      address: `http :${g.httpPort} ssh :${g.sshPort}`,
      up: await acceptsTcp(g.httpPort),
    };
  }
  rows.redis = { pid: topology.redis.pid, address: topology.redis.url, up: isAlive(topology.redis.pid) };
  rows.s3 = { pid: topology.s3.pid, address: topology.s3.endpoint, up: isAlive(topology.s3.pid) };
  console.table(rows);
  return Object.values(rows).every((row) => row.up) ? 0 : 1;
}

async function stop(): Promise<number> {
  const topology = readTopology();
  if (!topology || !isAlive(topology.launcherPid)) {
    console.log('no local cluster is running');
    return 0;
  }
  process.kill(topology.launcherPid, 'SIGTERM');
  for (let i = 0; i < 300 && isAlive(topology.launcherPid); i++) await new Promise((r) => setTimeout(r, 100));
  console.log(isAlive(topology.launcherPid) ? 'the launcher did not stop in 30 s' : 'stopped');
  return isAlive(topology.launcherPid) ? 1 : 0;
}

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { backends: { type: 'string', default: '3' } },
});
const command = positionals[0] ?? 'up';
if (command === 'up') {
  const count = Number(values.backends);
  if (!Number.isInteger(count) || count < 1) {
    console.error('--backends must be a positive integer');
    process.exit(2);
  }
  await up(count).catch((err: unknown) => {
    console.error(`could not start the cluster: ${(err as Error).message}`);
    process.exit(1);
  });
} else if (command === 'env') {
  const topology = readTopology();
  if (!topology || !isAlive(topology.launcherPid)) {
    console.error('no local cluster is running (start one with `npm run dev`)');
    process.exit(1);
  }
  for (const [key, value] of Object.entries(topology.appEnv)) console.log(`export ${key}='${value}'`);
} else if (command === 'status') {
  process.exit(await status());
} else if (command === 'stop') {
  process.exit(await stop());
} else {
  console.error(`unknown command "${command}": use up, status, env or stop`);
  process.exit(2);
}
