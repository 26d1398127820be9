import { createLogger, installShutdown } from '@cring/service-runtime';
import { loadConfig } from './config.ts';
import { buildHttpApp } from './http/app.ts';
import { createBackendProxy } from './http/backend-proxy.ts';
import { createSshPassThrough } from './ssh/pass-through.ts';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'gateway', level: config.logLevel });
  const primary = config.backends[0];
  if (!primary) throw new Error('no backends configured');
  const proxy = createBackendProxy();
  const app = buildHttpApp({ logger, proxy, backend: primary });
  const ssh = createSshPassThrough({ logger, selectBackend: () => primary });

  installShutdown({
    logger,
    deadlineMs: config.shutdownDeadlineMs,
    shutdown: async () => {
      await ssh.close();
      await app.close();
      proxy.close();
    },
  });

  await app.listen({ host: config.http.host, port: config.http.port });
  const sshPort = await ssh.listen(config.ssh.port, config.ssh.host);
  logger.info({ http: config.http, sshPort, backends: config.backends.map((b) => b.name) }, 'gateway ready');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
