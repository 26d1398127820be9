import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type BackupStore, createBackupStore } from '@cring/backup-store';
import { acceptsTcp, type Cluster, freePort, ManagedProcess, startCluster } from '@cring/local-cluster';
import { createManifest, type Manifest } from '@cring/manifest';
import type { CharmClient } from '@cring/test/harness/charm-cli.ts';
import { newUser } from '@cring/test/harness/clients.ts';
import { tokens } from '@cring/test/harness/raw-http.ts';
import { Redis } from 'ioredis';
import { type HttpEndpoint, httpEndpoint, postUpload } from './http-load.ts';
import type { HopPath } from './results-table.ts';
import { createUploadBody } from './upload-body.ts';

/** A running local cluster with everything a measurement needs: the four paths, a user, the manifest. */
export interface BenchCluster {
  cluster: Cluster;
  replicator: ManagedProcess;
  passThrough: ManagedProcess;
  manifest: Manifest;
  charm: CharmClient;
  charmId: string;
  endpoints: Record<HopPath, HttpEndpoint>;
  /**
   * What the fan-out path writes to: every backend (the user's token is valid on each) and S3 through the
   * backup store's own PUT, as the gateway and the replicator make it.
   */
  fanOut: { backends: HttpEndpoint[]; backup: BackupStore };
  /** A fresh valid token for the user. */
  token(): string;
  /** Every process of the run by name → pid, the bench itself included (read anew: a restart changes pids). */
  processes(): Record<string, number>;
  /**
   * Deletes the multipart temp files the charm servers leave in tmpDir: v0.12.6 never removes an upload's temp
   * file (bodies above 32 MiB), because goji hands the handler a copy of the request and net/http only cleans up
   * the original's form. Call only while no upload is in flight.
   */
  removeLeakedUploadFiles(): number;
  /**
   * Restarts the gateway (a fresh process: its RSS starts from scratch), with extra environment or as the cluster
   * started it, and warms it with one small upload.
   */
  restartGateway(extraEnv?: Record<string, string>): Promise<void>;
  /** Whether the gateway, the replicator and every backend still run. */
  running(): boolean;
  /** Stops everything started here. Safe to call twice. */
  stop(): Promise<void>;
}

async function startTcpPassThrough(runDir: string, targetPort: number) {
  const port = await freePort();
  const child = new ManagedProcess({
    name: 'tcp pass-through',
    command: process.execPath,
    args: [join(import.meta.dirname, 'tcp-pass-through-main.ts')],
    env: { BENCH_TARGET_PORT: String(targetPort), BENCH_LISTEN_PORT: String(port) },
    logFile: join(runDir, 'logs', 'tcp-pass-through.log'),
    ready: () => acceptsTcp(port),
  });
  await child.start();
  return { port, process: child };
}

/**
 * Starts the cluster (gateway at LOG_LEVEL=warn), the replicator, a TCP pass-through in front of backend 1, and
 * creates a user through the gateway with the real charm CLI. Throws when any of it does not come up.
 */
export async function startBenchCluster(options: {
  runDir: string;
  appEnv?: Record<string, string>;
  /** Run gateway and replicator under Node's permission model, as the local cluster does (default true). */
  confineCentral?: boolean;
}): Promise<BenchCluster> {
  const cluster = await startCluster({
    runDir: options.runDir,
    logLevel: 'warn',
    appEnv: options.appEnv,
    confineCentral: options.confineCentral,
  });
  const redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1 });
  const started: ManagedProcess[] = [];
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    redis.disconnect();
    for (const managed of started.reverse()) await managed.stop();
    await cluster.stop();
  };
  try {
    const backend1 = cluster.backends[0];
    const replicator = cluster.replicator;
    if (!backend1 || !cluster.gateway || !replicator)
      throw new Error('the cluster has no backend 1, gateway or replicator');
    const proxy = await startTcpPassThrough(options.runDir, backend1.info.httpPort);
    started.push(proxy.process);
    const { charm, charmId } = await newUser(cluster, 'bench');
    const mint = tokens(cluster);
    const gateway = cluster.gateway;
    const gatewayEnv = { ...(gateway.spec.env ?? {}) };
    const endpoints: Record<HopPath, HttpEndpoint> = {
      direct: httpEndpoint('direct', backend1.info.httpPort),
      'tcp-proxy': httpEndpoint('tcp-proxy', proxy.port),
      gateway: httpEndpoint('gateway', cluster.gatewayPorts.httpPort),
    };
    return {
      cluster,
      replicator,
      passThrough: proxy.process,
      manifest: createManifest(redis),
      charm,
      charmId,
      endpoints,
      fanOut: {
        backends: cluster.backends.map((b) => httpEndpoint(b.info.name, b.info.httpPort)),
        backup: createBackupStore({ ...cluster.s3.info, forcePathStyle: true }),
      },
      token: () => mint.valid(charmId),
      processes() {
        const out: Record<string, number> = { bench: process.pid };
        const add = (name: string, pid: number | undefined) => {
          if (pid !== undefined) out[name] = pid;
        };
        add('gateway', cluster.gateway?.pid);
        cluster.backends.forEach((backend, i) => {
          add(backend.info.name, backend.process.pid);
          add(`${backend.info.name}-agent`, cluster.agents[i]?.pid);
        });
        add('replicator', replicator.pid);
        add('redis', cluster.redis.process.pid);
        add('s3', cluster.s3.process.pid);
        add('tcp-proxy', proxy.process.pid);
        return out;
      },
      removeLeakedUploadFiles() {
        let removed = 0;
        for (const { tmpDir } of cluster.backends.map((b) => b.info)) {
          const leaked = readdirSync(tmpDir).filter((name) => name.startsWith('multipart-'));
          for (const name of leaked) rmSync(join(tmpDir, name), { force: true });
          removed += leaked.length;
        }
        return removed;
      },
      async restartGateway(extraEnv = {}) {
        gateway.spec.env = { ...gatewayEnv, ...extraEnv };
        await gateway.restart();
        const body = createUploadBody(16, Buffer.alloc(16));
        // The keep-alive agent may still hold a socket to the old process: the first request can meet its reset.
        for (let attempt = 1; ; attempt++) {
          try {
            await postUpload(endpoints.gateway, '/bench/warm-up', mint.valid(charmId), body);
            return;
          } catch (err) {
            if (attempt === 3) throw err;
          }
        }
      },
      running: () =>
        cluster.gateway?.isRunning === true &&
        replicator.isRunning &&
        cluster.backends.every((b) => b.process.isRunning),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Removes a run's data (gigabytes of uploads), keeping its logs for a look after the run. */
export function removeRunData(runDir: string): void {
  for (const name of readdirSync(runDir)) {
    if (name !== 'logs') rmSync(join(runDir, name), { recursive: true, force: true });
  }
}
