import type { Server } from 'node:http';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Logger } from './logger.ts';

// node:http via getBuiltinModule, not an ESM import: importing it loads Node's bundled undici (the lazy WebSocket
// exports), ~12 MiB RSS that nothing here uses (nodejs/node#59686; apps/gateway/README.md, Memory).
const { createServer } = process.getBuiltinModule('node:http');

/** One Prometheus registry per process, with the process's own metrics (CPU, RSS, event loop lag, GC). */
export function createMetricsRegistry(app: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ app });
  collectDefaultMetrics({ register: registry, prefix: 'cring_' });
  return registry;
}

/** Serves GET /metrics for processes without an HTTP server of their own (replicator, healer worker). */
export function serveMetrics(options: { registry: Registry; host: string; port: number; logger: Logger }) {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n');
      return;
    }
    options.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': options.registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  return {
    listen: () =>
      new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          options.logger.info({ host: options.host, port: options.port }, 'metrics on /metrics');
          resolve();
        });
      }),
    close: () =>
      new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve())),
  };
}
