import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';

/** True when something accepts TCP connections on host:port. */
export async function acceptsTcp(port: number, host = '127.0.0.1'): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.setTimeout(1000);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** True when GET url answers 200; an https URL is checked against `ca` (a test CA) when given. */
export async function answersOk(url: string, ca?: Buffer): Promise<boolean> {
  if (url.startsWith('https:')) {
    return await new Promise((resolve) => {
      const request = httpsGet(url, { ca, timeout: 1000 }, (response) => {
        response.resume();
        resolve(response.statusCode === 200);
      });
      request.once('error', () => resolve(false));
      request.once('timeout', () => request.destroy());
    });
  }
  const response = await fetch(url, { signal: AbortSignal.timeout(1000) });
  await response.body?.cancel();
  return response.ok;
}
