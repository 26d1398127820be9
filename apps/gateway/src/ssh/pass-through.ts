import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Backend } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';

export interface SshPassThroughDeps {
  logger: Logger;
  /**
   * Where a new SSH connection goes (the account primary), given the backends whose connect already failed for
   * it; undefined when none is left. Asked again after each failure, so the next choice can be agreed elsewhere.
   */
  selectBackend: (failed: readonly Backend[]) => Promise<Backend | undefined> | Backend | undefined;
  /** Called when a TCP connect to a backend fails before any byte was relayed; the next candidate is tried. */
  onBackendFailure?: (backend: Backend, err: unknown) => void;
  /** Limit for one TCP connect to a backend (a host that drops SYNs); established sessions have no timeout. */
  connectTimeoutMs?: number;
  /** Takes a client no backend accepted (the read-only answer); without it such clients are turned away. */
  whenNoBackend?: (client: Socket) => void;
  /** Client connections served at once; past it a new one is told so and closed (default: no cap). */
  maxConnections?: number;
  /** Called when the cap turned a connection away (for the limits metric). */
  onRefused?: () => void;
}

const KEEPALIVE_INITIAL_DELAY_MS = 30_000;
// A client we turned away gets a FIN; if it never closes its side, the socket is dropped after this.
const REFUSED_CLIENT_LINGER_MS = 5_000;

type Attempt = { upstream: Socket } | { err: Error } | { clientLeft: true };

/**
 * A TCP pass-through for SSH: users authenticate end to end with their own keys; the gateway never terminates
 * SSH. The backend is chosen once per connection, at connect time: when the TCP connect to a candidate fails, the
 * next one is tried. The client stays paused (its bytes wait in the kernel) until an upstream is connected, so a
 * failover never has to replay anything. No idle timeout: long `charm link` sessions stay up.
 */
export function createSshPassThrough({
  logger,
  selectBackend,
  onBackendFailure,
  connectTimeoutMs = 5_000,
  whenNoBackend,
  maxConnections = Number.POSITIVE_INFINITY,
  onRefused,
}: SshPassThroughDeps) {
  const log = logger.child({ component: 'ssh' });
  const sockets = new Set<Socket>();
  let clients = 0;
  let closing: Promise<void> | undefined;

  function track(socket: Socket): void {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  }

  function connectUpstream(client: Socket, backend: Backend): Promise<Attempt> {
    return new Promise((resolve) => {
      const upstream = connect({
        host: backend.sshHost,
        port: backend.sshPort,
        noDelay: true,
        keepAlive: true,
        keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS,
        timeout: connectTimeoutMs,
      });
      track(upstream);
      const settle = (attempt: Attempt) => {
        upstream.off('connect', onConnect).off('error', onError).off('timeout', onTimeout);
        client.off('close', onClientClose);
        resolve(attempt);
      };
      const onConnect = () => {
        upstream.setTimeout(0);
        settle({ upstream });
      };
      const onError = (err: Error) => settle({ err });
      const onTimeout = () => {
        const err = Object.assign(new Error(`connect timed out after ${connectTimeoutMs} ms`), {
          code: 'ETIMEDOUT',
        });
        upstream.destroy();
        settle({ err });
      };
      const onClientClose = () => {
        upstream.destroy();
        settle({ clientLeft: true });
      };
      upstream.once('connect', onConnect).once('error', onError).once('timeout', onTimeout);
      client.once('close', onClientClose);
    });
  }

  function relay(client: Socket, upstream: Socket, backend: Backend): void {
    upstream.on('error', (err) => log.debug({ err, backend: backend.name }, 'SSH backend connection error'));
    upstream.once('close', () => client.destroy());
    client.once('close', () => upstream.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
    log.debug({ backend: backend.name, client: client.remoteAddress }, 'SSH session relayed');
  }

  /** Ends the client's connection with a FIN (not a reset): its unread bytes are drained and dropped. */
  function turnAway(client: Socket): void {
    const linger = setTimeout(() => client.destroy(), REFUSED_CLIENT_LINGER_MS).unref();
    client.once('close', () => clearTimeout(linger));
    client.resume();
    client.end();
  }

  async function handle(client: Socket): Promise<void> {
    const failedBackends: Backend[] = [];
    const failed: string[] = [];
    for (;;) {
      if (closing || client.destroyed) return;
      const backend = await selectBackend(failedBackends);
      if (!backend || failed.includes(backend.name) || closing || client.destroyed) break;
      const attempt = await connectUpstream(client, backend);
      if ('clientLeft' in attempt) return;
      if ('upstream' in attempt) {
        if (closing) {
          attempt.upstream.destroy();
          return;
        }
        relay(client, attempt.upstream, backend);
        return;
      }
      failed.push(backend.name);
      failedBackends.push(backend);
      log.warn({ err: attempt.err, backend: backend.name }, 'SSH backend unreachable, trying the next one');
      try {
        onBackendFailure?.(backend, attempt.err);
      } catch (err) {
        log.error({ err, backend: backend.name }, 'onBackendFailure threw');
      }
    }
    if (closing || client.destroyed) return;
    if (whenNoBackend) {
      log.warn({ tried: failed }, 'no SSH backend reachable, answering read-only');
      whenNoBackend(client);
      client.resume(); // paused since accept (pauseOnConnect); the new owner's listeners are attached now
      return;
    }
    log.warn({ tried: failed }, 'no SSH backend reachable, closing the connection');
    turnAway(client);
  }

  const server: Server = createServer(
    {
      pauseOnConnect: true,
      noDelay: true,
      keepAlive: true,
      keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS,
    },
    (client) => {
      track(client);
      client.on('error', (err) => log.debug({ err }, 'SSH client connection error'));
      if (closing) {
        client.destroy();
        return;
      }
      if (clients >= maxConnections) {
        onRefused?.();
        log.warn({ maxConnections }, 'SSH connection cap reached, turning a client away');
        // RFC 4253 §4.2 lets a server send lines before its version string; clients show or log them.
        client.write(
          `charmed ring: the gateway is at its limit of ${maxConnections} SSH connections, retry shortly\r\n`,
        );
        turnAway(client);
        return;
      }
      clients++;
      client.once('close', () => clients--);
      handle(client).catch((err: unknown) => {
        log.error({ err }, 'SSH pass-through failed');
        client.destroy();
      });
    },
  );
  server.on('error', (err) => log.error({ err }, 'SSH listener error'));

  return {
    server,
    listen(port: number, host: string): Promise<number> {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address ? address.port : port);
        });
      });
    },
    /** Stops accepting and ends open sessions. Safe to call twice; every call waits for the same close. */
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        // The callback runs once every connection is gone, or at once (with an error) if never listening.
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closing;
    },
  };
}

export type SshPassThrough = ReturnType<typeof createSshPassThrough>;
