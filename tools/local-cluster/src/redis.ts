import { mkdirSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { freePort } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';

async function answersPing(port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.setTimeout(1000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** A real redis-server with AOF on and noeviction, as the design asks for the manifest and queues. */
export async function createRedis(options: {
  redisBin: string;
  runDir: string;
  port?: number;
  /** Its name (folder and log); several run side by side in a Sentinel set. */
  name?: string;
  extraArgs?: string[];
}) {
  const port = options.port ?? (await freePort());
  const name = options.name ?? 'redis';
  const dir = join(options.runDir, name);
  mkdirSync(dir, { recursive: true });
  const process = new ManagedProcess({
    name,
    command: options.redisBin,
    args: [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
      '--maxmemory-policy',
      'noeviction',
      '--save',
      '',
      '--daemonize',
      'no',
      '--protected-mode',
      'yes',
      ...(options.extraArgs ?? []),
    ],
    logFile: join(options.runDir, 'logs', `${name}.log`),
    ready: () => answersPing(port),
  });
  // `dir` holds its AOF (appendonlydir/): tests copy it to restore Redis from an older copy.
  return { url: `redis://127.0.0.1:${port}`, port, dir, process };
}

export const SENTINEL_MASTER = 'cring';

/**
 * Redis that survives losing one node: a primary, two replicas (so that after a failover a replica is still there
 * to confirm each commit's WAIT) and three sentinels (a quorum of 2 decides a failover). Nothing is started.
 */
export async function createRedisSentinelSet(options: {
  redisBin: string;
  sentinelBin: string;
  runDir: string;
}) {
  const primary = await createRedis({ redisBin: options.redisBin, runDir: options.runDir, name: 'redis-a' });
  const replicas = [
    await createRedis({
      ...options,
      name: 'redis-b',
      extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)],
    }),
    await createRedis({
      ...options,
      name: 'redis-c',
      extraArgs: ['--replicaof', '127.0.0.1', String(primary.port)],
    }),
  ];
  const sentinels = [];
  for (const name of ['sentinel-1', 'sentinel-2', 'sentinel-3']) {
    const port = await freePort();
    const dir = join(options.runDir, name);
    mkdirSync(dir, { recursive: true });
    // Sentinel rewrites its config file as it learns the set: one writable file each.
    const configFile = join(dir, 'sentinel.conf');
    writeFileSync(
      configFile,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${primary.port} 2`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
        `sentinel failover-timeout ${SENTINEL_MASTER} 10000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER} 1`,
        '',
      ].join('\n'),
    );
    sentinels.push({
      port,
      process: new ManagedProcess({
        name,
        command: options.sentinelBin,
        args: [configFile],
        logFile: join(options.runDir, 'logs', `${name}.log`),
        ready: () => answersPing(port),
      }),
    });
  }
  return { primary, replicas, sentinels, masterName: SENTINEL_MASTER };
}
