import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { accountKeys } from '@cring/accounts';
import { formatBackends } from '@cring/charm';
import { Redis } from 'ioredis';
import { createAgent } from './agent.ts';
import { findBinaries, findOnPath, repoRoot } from './binaries.ts';
import { type CharmBackend, createCharmBackend, SERVER_KEY_FILE, shareServerKey } from './charm-backend.ts';
import { freePorts } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';
import { acceptsTcp } from './probes.ts';
import { createRedis, createRedisSentinelSet } from './redis.ts';
import { createS3Server, ensureBucket, type S3Info } from './s3-server.ts';
import { createTestTls, type TlsFiles } from './tls.ts';

export interface ClusterOptions {
  runDir: string;
  backendCount?: number;
  /** Also start the gateway (default true). */
  withGateway?: boolean;
  /** Also start the replicator (default: when the gateway starts). */
  withReplicator?: boolean;
  /** Also start the healer worker (scheduled scans; default false: tests run `healer --scan` when they mean to). */
  withHealer?: boolean;
  logLevel?: string;
  /** HTTPS everywhere: backends, the gateway, with a throwaway CA every client is told to trust. */
  tls?: boolean;
  /** Extra environment for the Charmed Ring processes (tests use it to change settings). */
  appEnv?: Record<string, string>;
  /**
   * Called for each backend's data dir before any backend starts (tests put one on a small file system); the
   * folder it leaves at that path (a mount point, a symlink to one) becomes the data dir.
   */
  prepareDataDir?: (name: string, dataDir: string) => void;
  /** Extra environment for every agent (tests use it to shorten the temp sweep, set the free-space reserve). */
  agentEnv?: Record<string, string>;
  /**
   * Run the central processes (gateway, replicator, healer) under Node's permission model, able to read only
   * the code, the cluster key and their own folders: opening any backend's data dir fails (default true).
   */
  confineCentral?: boolean;
  /** One Redis (default), or a primary, two replicas and three sentinels the processes find it through. */
  redis?: 'single' | 'sentinel';
}

/**
 * A refused write the gateway could not put back on record at once (Redis unreachable) is retried this long; the
 * healer adopts a lost write only once its copies are older than the grace, which must stay longer (one host: no
 * clock skew). Both far below the defaults (60 s, 10 min), so a nemesis run's heal waits seconds.
 */
const CLUSTER_REFUSAL_RECORD_HORIZON_MS = 10_000;
const CLUSTER_LOST_WRITE_GRACE_MS = 12_000;

/** What `.cring/dev/cluster.json` holds: enough to use, inspect and stop the cluster. */
export interface ClusterTopology {
  runDir: string;
  publicUrl: string;
  charmBin: string;
  backends: {
    name: string;
    httpUrl: string;
    sshPort: number;
    healthUrl: string;
    dataDir: string;
    pid?: number;
    agent: { url: string; pid?: number };
  }[];
  gateway?: { httpPort: number; sshPort: number; adminPort: number; pid?: number };
  replicator?: { pid?: number; metricsPort: number };
  healer?: { pid?: number; metricsPort: number };
  serverKeyFile: string;
  redis: { url: string; pid?: number };
  s3: S3Info & { pid?: number };
  clientEnv: { CHARM_HOST: string; CHARM_SSH_PORT: string; CHARM_HTTP_PORT: string; SSL_CERT_FILE?: string };
  /** The settings the Charmed Ring processes run with (for operator commands against this cluster). */
  appEnv: Record<string, string>;
  launcherPid: number;
}

export interface Cluster {
  topology(): ClusterTopology;
  backends: CharmBackend[];
  /** The agent beside each backend (same order): the only process that opens that backend's data dir. */
  agents: ManagedProcess[];
  /** The Redis the cluster started with (with Sentinel: the first primary, until a failover). */
  redis: Awaited<ReturnType<typeof createRedis>>;
  sentinel?: Awaited<ReturnType<typeof createRedisSentinelSet>>;
  s3: Awaited<ReturnType<typeof createS3Server>>;
  gateway?: ManagedProcess;
  replicator?: ManagedProcess;
  healer?: ManagedProcess;
  /** The environment every Charmed Ring process of this cluster gets. */
  appEnv: Record<string, string>;
  /**
   * How every central process (gateway, replicator, healer, cring, also those tests start) runs: the Node
   * permission flags that keep it out of the backends' data dirs, and its own TMPDIR.
   */
  central: { nodeArgs: string[]; env: Record<string, string> };
  /** What the gateway gets on top of appEnv (its ports and spool): for tests that start a gateway themselves. */
  gatewayEnv: Record<string, string>;
  serverKeyFile: string;
  gatewayPorts: { httpPort: number; sshPort: number; adminPort: number };
  publicUrl: string;
  charmBin: string;
  /** The test CA and certificate when the cluster runs HTTPS. */
  tls?: TlsFiles;
  /**
   * Adds a backend as the runbook does ("Adding a backend"): its agent starts with the cluster key,
   * `cring init-backend` prepares it from the first backend, its server starts, it joins CRING_BACKENDS and
   * CRING_AGENTS (in `appEnv` too, so later CLI runs see the new ring), and the gateway, replicator and healer
   * restart with the new ring. Files follow with `healer --scan` (then `--prune`), which the caller runs.
   */
  addBackend(): Promise<CharmBackend>;
  /** Stops every process the cluster started, gateway first. Safe to call twice. */
  stop(): Promise<void>;
}

export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const binaries = findBinaries();
  const runDir = options.runDir;
  mkdirSync(join(runDir, 'logs'), { recursive: true });
  const [httpPort, sshPort, adminPort, replicatorMetricsPort, healerMetricsPort] = (await freePorts(5)) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const gatewayPorts = { httpPort, sshPort, adminPort };
  // One issuer for every backend, so a token from one is valid on all; it names the gateway users talk to.
  const tls = options.tls ? createTestTls(join(runDir, 'tls')) : undefined;
  const publicUrl = `${tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`;

  const backends: CharmBackend[] = [];
  for (let i = 1; i <= (options.backendCount ?? 3); i++) {
    const backend = await createCharmBackend({
      name: `charm${i}`,
      charmBin: binaries.charm,
      runDir,
      publicUrl,
      tls,
    });
    if (options.prepareDataDir) {
      options.prepareDataDir(backend.info.name, backend.info.dataDir);
      mkdirSync(join(backend.info.dataDir, '.ssh'), { recursive: true, mode: 0o700 });
    }
    backends.push(backend);
  }
  const sentinel =
    options.redis === 'sentinel'
      ? await createRedisSentinelSet({
          redisBin: binaries.redisServer,
          sentinelBin: findOnPath('redis-sentinel'),
          runDir,
        })
      : undefined;
  const redis = sentinel?.primary ?? (await createRedis({ redisBin: binaries.redisServer, runDir }));
  const s3 = await createS3Server({ versitygwBin: binaries.versitygw, runDir });
  const started: ManagedProcess[] = [];
  const stop = async () => {
    await Promise.all([...started].reverse().map((p) => p.stop()));
  };
  try {
    const [first, ...others] = backends as [CharmBackend, ...CharmBackend[]];
    // The first backend generates the server key on start; the others get a copy before they start.
    started.push(first.process);
    await first.process.start();
    for (const backend of others) shareServerKey(first.info.dataDir, backend.info.dataDir);
    started.push(...others.map((b) => b.process), redis.process, s3.process);
    await Promise.all([...others.map((b) => b.process.start()), redis.process.start(), s3.process.start()]);
    if (sentinel) {
      const rest = [...sentinel.replicas.map((r) => r.process), ...sentinel.sentinels.map((s) => s.process)];
      started.push(...rest);
      for (const process of rest) await process.start();
    }
    await ensureBucket(s3.info);

    // The central processes get their own copy of the cluster key: they never look inside a data dir.
    const serverKeyFile = join(runDir, 'cluster-key', 'charm_server_ed25519');
    mkdirSync(dirname(serverKeyFile), { recursive: true, mode: 0o700 });
    for (const suffix of ['', '.pub']) {
      copyFileSync(join(first.info.dataDir, SERVER_KEY_FILE + suffix), serverKeyFile + suffix);
      chmodSync(serverKeyFile + suffix, 0o600);
    }
    const agentSet = await Promise.all(
      backends.map((b) =>
        createAgent({
          node: binaries.node,
          backend: b.info,
          runDir,
          issuer: publicUrl,
          logLevel: options.logLevel,
          tls,
          env: options.agentEnv,
        }),
      ),
    );
    const agents = agentSet.map((a) => a.process);
    const agentUrls = agentSet.map((a) => a.url);
    const agentUrl = (i: number) => agentUrls[i] as string;
    started.push(...agents);
    await Promise.all(agents.map((a) => a.start()));

    const appEnv: Record<string, string> = {
      CRING_BACKENDS: formatBackends(
        backends.map((b) => ({
          name: b.info.name,
          httpUrl: b.info.httpUrl,
          sshHost: '127.0.0.1',
          sshPort: b.info.sshPort,
        })),
      ),
      CRING_ISSUER: publicUrl,
      CRING_SERVER_KEY_FILE: serverKeyFile,
      ...(sentinel
        ? {
            REDIS_SENTINELS: sentinel.sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
            REDIS_SENTINEL_MASTER: sentinel.masterName,
          }
        : { REDIS_URL: redis.url }),
      S3_ENDPOINT: s3.info.endpoint,
      S3_REGION: s3.info.region,
      S3_BUCKET: s3.info.bucket,
      S3_ACCESS_KEY_ID: s3.info.accessKeyId,
      S3_SECRET_ACCESS_KEY: s3.info.secretAccessKey,
      S3_FORCE_PATH_STYLE: 'true',
      // Every backend's SQLite is reached through the agent beside it, as on separate hosts.
      CRING_AGENTS: backends.map((b, i) => `${b.info.name}=${agentUrl(i)}`).join(','),
      LOG_LEVEL: options.logLevel ?? 'info',
      // Short, so a run's heal waits little: the healer's grace still outlasts the gateway's horizon.
      CRING_REFUSAL_RECORD_HORIZON_MS: String(CLUSTER_REFUSAL_RECORD_HORIZON_MS),
      CRING_LOST_WRITE_GRACE_MS: String(CLUSTER_LOST_WRITE_GRACE_MS),
      ...(tls
        ? {
            NODE_EXTRA_CA_CERTS: tls.caFile,
            CRING_TLS_CERT_FILE: tls.certFile,
            CRING_TLS_KEY_FILE: tls.keyFile,
          }
        : {}),
      ...options.appEnv,
    };
    const centralTmp = join(runDir, 'central-tmp');
    mkdirSync(centralTmp, { recursive: true });
    // Node's compile cache keeps the type-stripped sources (and V8 code) across starts: a process that finds them
    // there never loads the TypeScript stripper, about 35 MiB less RSS for the gateway. Shared by every run here.
    const compileCache = join(repoRoot, '.cring', 'node-compile-cache');
    mkdirSync(compileCache, { recursive: true });
    // Node's permission model drops an --allow-fs-write folder that does not exist yet at start-up: the
    // gateway's first upload above its memory spool was refused (ERR_ACCESS_DENIED) on a fresh cluster.
    mkdirSync(join(runDir, 'spool'), { recursive: true, mode: 0o700 });
    const central = {
      nodeArgs:
        (options.confineCentral ?? true)
          ? centralPermissions({
              runDir,
              serverKeyFile,
              writable: [centralTmp, join(runDir, 'spool'), compileCache],
            })
          : [],
      env: { TMPDIR: centralTmp, NODE_COMPILE_CACHE: compileCache },
    };
    // `launcher`: a script that starts node with the app's own process settings (NODE names the binary).
    const app = (
      name: string,
      start: { script: string } | { launcher: string },
      env: Record<string, string>,
      ready: () => Promise<boolean>,
    ) =>
      new ManagedProcess({
        name,
        command: 'launcher' in start ? join(repoRoot, start.launcher) : binaries.node,
        args: 'launcher' in start ? central.nodeArgs : [...central.nodeArgs, join(repoRoot, start.script)],
        env: { ...appEnv, ...central.env, NODE: binaries.node, ...env },
        logFile: join(runDir, 'logs', `${name}.log`),
        ready,
      });

    const gatewayEnv: Record<string, string> = {
      CRING_HTTP_HOST: '127.0.0.1',
      CRING_HTTP_PORT: String(httpPort),
      CRING_SSH_HOST: '127.0.0.1',
      CRING_SSH_PORT: String(sshPort),
      CRING_ADMIN_HOST: '127.0.0.1',
      CRING_ADMIN_PORT: String(adminPort),
      CRING_SPOOL_DIR: join(runDir, 'spool'),
    };
    let gateway: ManagedProcess | undefined;
    let replicator: ManagedProcess | undefined;
    if (options.withGateway ?? true) {
      gateway = app(
        'gateway',
        { launcher: 'apps/gateway/bin/gateway' },
        gatewayEnv,
        async () =>
          (await acceptsTcp(httpPort)) && (await acceptsTcp(sshPort)) && (await acceptsTcp(adminPort)),
      );
      started.push(gateway);
      await gateway.start();
    }
    if (options.withReplicator ?? options.withGateway ?? true) {
      replicator = app(
        'replicator',
        { script: 'apps/replicator/src/main.ts' },
        {
          // As the gateway's: a copy's chunks are collected by young-generation GCs, not by full ones (with the
          // default young generation, each 64 MiB of socket reads forced a mark-compact: ~30% of its CPU on 1 GiB).
          NODE_OPTIONS: '--max-semi-space-size=1',
          CRING_METRICS_PORT: String(replicatorMetricsPort),
        },
        // Its metrics port opens once its workers run (a log line would not show at LOG_LEVEL=warn).
        () => acceptsTcp(replicatorMetricsPort),
      );
      started.push(replicator);
      await replicator.start();
      await firstAccountRound(redis.url, backends.length);
    }
    let healer: ManagedProcess | undefined;
    if (options.withHealer) {
      healer = app(
        'healer',
        { script: 'apps/healer/src/main.ts' },
        { CRING_METRICS_PORT: String(healerMetricsPort) },
        () => acceptsTcp(healerMetricsPort),
      );
      started.push(healer);
      await healer.start();
    }

    const addBackend = async (): Promise<CharmBackend> => {
      const backend = await createCharmBackend({
        name: `charm${backends.length + 1}`,
        charmBin: binaries.charm,
        runDir,
        publicUrl,
        tls,
      });
      if (options.prepareDataDir) options.prepareDataDir(backend.info.name, backend.info.dataDir);
      const agent = await createAgent({
        node: binaries.node,
        backend: backend.info,
        runDir,
        issuer: publicUrl,
        logLevel: options.logLevel,
        serverKeyFile,
        tls,
        env: options.agentEnv,
      });
      started.push(agent.process);
      await agent.process.start();
      const ring = {
        CRING_BACKENDS: `${appEnv.CRING_BACKENDS},${formatBackends([
          {
            name: backend.info.name,
            httpUrl: backend.info.httpUrl,
            sshHost: '127.0.0.1',
            sshPort: backend.info.sshPort,
          },
        ])}`,
        CRING_AGENTS: `${appEnv.CRING_AGENTS},${backend.info.name}=${agent.url}`,
      };
      const from = (backends[0] as CharmBackend).info.name;
      await runCentral(
        binaries.node,
        [
          ...central.nodeArgs,
          join(repoRoot, 'apps/cring/src/cli.ts'),
          ...['init-backend', '--from', from, '--to', backend.info.name],
        ],
        { ...process.env, ...appEnv, ...central.env, ...ring },
      );
      started.push(backend.process);
      await backend.process.start();
      backends.push(backend);
      agents.push(agent.process);
      agentUrls.push(agent.url);
      Object.assign(appEnv, ring);
      for (const app of [gateway, replicator, healer]) await app?.restart(ring);
      return backend;
    };

    return {
      backends,
      agents,
      redis,
      sentinel,
      s3,
      gateway,
      replicator,
      healer,
      appEnv,
      central,
      gatewayEnv,
      serverKeyFile,
      gatewayPorts,
      publicUrl,
      charmBin: binaries.charm,
      tls,
      addBackend,
      stop,
      topology: () => ({
        runDir,
        publicUrl,
        charmBin: binaries.charm,
        backends: backends.map((b, i) => ({
          name: b.info.name,
          httpUrl: b.info.httpUrl,
          sshPort: b.info.sshPort,
          healthUrl: b.info.healthUrl,
          dataDir: b.info.dataDir,
          pid: b.process.pid,
          agent: { url: agentUrl(i), pid: agents[i]?.pid },
        })),
        gateway: gateway ? { ...gatewayPorts, pid: gateway.pid } : undefined,
        replicator: replicator ? { pid: replicator.pid, metricsPort: replicatorMetricsPort } : undefined,
        healer: healer ? { pid: healer.pid, metricsPort: healerMetricsPort } : undefined,
        serverKeyFile,
        redis: { url: redis.url, pid: redis.process.pid },
        s3: { ...s3.info, pid: s3.process.pid },
        appEnv,
        clientEnv: {
          CHARM_HOST: '127.0.0.1',
          CHARM_SSH_PORT: String(sshPort),
          CHARM_HTTP_PORT: String(httpPort),
          // Go's TLS trusts the test CA through this (only set when the cluster runs HTTPS).
          ...(tls ? { SSL_CERT_FILE: tls.caFile } : {}),
        },
        launcherPid: process.pid,
      }),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * Node permission-model flags for a central process: it reads the code, the cluster key, the TLS files and its
 * own folders, and nothing else, so a code path that opened a backend's data dir would fail with
 * ERR_ACCESS_DENIED (the processes run as root here, so file modes would prove nothing).
 */
export function centralPermissions(options: {
  runDir: string;
  serverKeyFile: string;
  writable: string[];
}): string[] {
  const readable = [
    ...['apps', 'libs', 'tools', 'node_modules', 'package.json'].map((p) => join(repoRoot, p)),
    dirname(options.serverKeyFile),
    join(options.runDir, 'tls'),
    ...options.writable,
  ];
  return [
    '--permission',
    ...readable.map((p) => `--allow-fs-read=${p}`),
    ...options.writable.map((p) => `--allow-fs-write=${p}`),
  ];
}

/**
 * Waits until the replicator's first account sync round has adopted every backend DB (recorded a marker for
 * each): that round writes into every DB, and a charm server's own write meeting it fails, so users come after.
 */
async function firstAccountRound(redisUrl: string, backendCount: number): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const deadline = Date.now() + 30_000;
    while ((await redis.hlen(accountKeys.markers())) < backendCount) {
      if (Date.now() > deadline)
        throw new Error('the first account sync round did not finish in 30 s; see replicator.log');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } finally {
    redis.disconnect();
  }
}

/** Runs an operator command (`cring …`) to its end; a non-zero exit is an error carrying its output. */
function runCentral(node: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(node, args, { env, timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`cring failed: ${stderr || stdout}`, { cause: err })) : resolve(),
    );
  });
}

export function writeTopology(path: string, topology: ClusterTopology): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(topology, null, 2)}\n`);
}
