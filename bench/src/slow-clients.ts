import { connect, type Socket } from 'node:net';
import { postUpload, runLoad } from './http-load.ts';
import { downloadPath, type PhaseContext, type RowDetail, rowOf } from './http-phases.ts';
import { createUploadBody } from './upload-body.ts';

export const SLOW_CLIENTS = 300;

/**
 * Keeps `count` slow connections open to the gateway: a third trickle a request head one header a second, a
 * third connect and say nothing, a third ask for a file and never read it. A connection the gateway closes (its
 * timeouts) is opened again, so the count holds for the whole measurement.
 */
export function holdSlowClients(ctx: PhaseContext, count: number): { stop(): void; opened(): number } {
  const { port } = ctx.bench.endpoints.gateway;
  const file = `/v1/fs${downloadPath({ label: '1 MiB', bytes: 0, operations: {} })}`; // written by measureHttp
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  let opened = 0;
  const open = (kind: number) => {
    if (stopped) return;
    opened++;
    const socket = connect(port, '127.0.0.1', () => {
      const auth = `Authorization: bearer ${ctx.bench.token()}\r\n`;
      if (kind === 0) {
        socket.write(`GET ${file} HTTP/1.1\r\nHost: x\r\n`);
        const drip = setInterval(() => socket.destroyed || socket.write('X-Drip: 1\r\n'), 1000);
        timers.add(drip);
        socket.once('close', () => {
          clearInterval(drip);
          timers.delete(drip);
        });
      } else if (kind === 2) {
        socket.pause();
        socket.write(`GET ${file} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
      }
    });
    if (kind !== 2) socket.resume();
    socket.on('error', () => {});
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      open(kind);
    });
  };
  for (let i = 0; i < count; i++) open(i % 3);
  return {
    opened: () => opened,
    stop() {
      stopped = true;
      for (const timer of timers) clearInterval(timer);
      for (const socket of sockets) socket.destroy();
    },
  };
}

/** Sequential 1 MiB uploads through the gateway while 300 slow clients are connected: a normal user's latency. */
export async function measureUploadUnderSlowClients(
  ctx: PhaseContext,
  operations: number,
): Promise<RowDetail> {
  const size = { label: '1 MiB', bytes: 1024 * 1024, operations: { 1: operations } };
  const body = createUploadBody(size.bytes, ctx.block);
  const endpoint = ctx.bench.endpoints.gateway;
  const slow = holdSlowClients(ctx, SLOW_CLIENTS);
  ctx.log(`upload 1 MiB ×1 via gateway with ${SLOW_CLIENTS} slow clients connected`);
  try {
    await new Promise((resolve) => setTimeout(resolve, 2000)); // let them all connect and start stalling
    const token = ctx.bench.token();
    const result = await runLoad({
      concurrency: 1,
      operations,
      operation: (index) => postUpload(endpoint, `/bench/up/slow-clients/${index}`, token, body),
    });
    const detail = rowOf(`upload, ${SLOW_CLIENTS} slow clients`, size, 1, 'gateway', result);
    detail.row.note = `${slow.opened()} slow connections opened in all (the gateway's timeouts close them; they reconnect)`;
    return detail;
  } finally {
    slow.stop();
  }
}
