import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Backend } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';

export interface SshPassThroughDeps {
  logger: Logger;
  /** The backend a new SSH connection goes to (the account primary), or undefined when none is usable. */
  selectBackend: () => Backend | undefined;
}

/**
 * A TCP pass-through for SSH: users authenticate end to end with their own keys; the gateway never terminates
 * SSH. The backend is chosen once per connection. No idle timeout: long `charm link` sessions stay up.
 */
export function createSshPassThrough({ logger, selectBackend }: SshPassThroughDeps) {
  const log = logger.child({ component: 'ssh' });
  const sockets = new Set<Socket>();
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    client.on('error', () => {});
    const backend = selectBackend();
    if (!backend) {
      log.warn('no healthy backend for SSH, closing the connection');
      client.destroy();
      return;
    }
    const upstream = connect({ host: backend.sshHost, port: backend.sshPort });
    sockets.add(upstream);
    upstream.once('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.once('close', () => upstream.destroy());
    upstream.on('error', (err) => log.warn({ err, backend: backend.name }, 'SSH backend connection failed'));
    upstream.setKeepAlive(true, 30_000);
    client.setKeepAlive(true, 30_000);
    upstream.once('connect', () => {
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });

  return {
    server,
    listen(port: number, host: string): Promise<number> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    /** Stops accepting and ends open sessions. Safe to call twice. */
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
    },
  };
}
