import { mkdirSync } from 'node:fs';
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
export async function createRedis(options: { redisBin: string; runDir: string; port?: number }) {
  const port = options.port ?? (await freePort());
  const dir = join(options.runDir, 'redis');
  mkdirSync(dir, { recursive: true });
  const process = new ManagedProcess({
    name: 'redis',
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
    ],
    logFile: join(options.runDir, 'logs', 'redis.log'),
    ready: () => answersPing(port),
  });
  return { url: `redis://127.0.0.1:${port}`, port, process };
}
