import { connect, createServer, type Socket } from 'node:net';

/**
 * The proxying floor: every connection is piped byte for byte to one target, nothing parsed, nothing buffered
 * beyond the sockets' own backpressure. What the gateway costs above this is its own work, not the extra hop.
 */
export function createTcpPassThrough(target: { host: string; port: number }) {
  const open = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      open.add(socket);
      socket.setNoDelay(true);
      socket.once('close', () => open.delete(socket));
    }
    client.pipe(upstream);
    upstream.pipe(client);
    // Either side failing ends both: the other side sees a reset, as it would without the hop.
    client.once('error', () => upstream.destroy());
    upstream.once('error', () => client.destroy());
  });
  return {
    listen(port: number, host: string): Promise<number> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    close(): Promise<void> {
      for (const socket of open) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
