import { readFileSync } from 'node:fs';
import { verifyAgentToken } from '@cring/agent-protocol';
import { loadServerKey } from '@cring/charm';
import { createLogger, installShutdown } from '@cring/service-runtime';
import { buildAgentApp } from './app.ts';
import { loadConfig } from './config.ts';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger({ name: 'agent', level: config.logLevel });
  const key = loadServerKey(config.serverKeyFile);
  const app = buildAgentApp({
    backend: { name: config.backend, dataDir: config.dataDir },
    verify: (token) =>
      verifyAgentToken(token, {
        publicKey: key.publicKey,
        kid: key.kid,
        issuer: config.issuer,
        backend: config.backend,
      }),
    serverKeyFile: config.serverKeyFile,
    maxDbBytes: config.maxDbBytes,
    logger,
    tls: config.tls && { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) },
  });
  installShutdown({ logger, deadlineMs: config.shutdownDeadlineMs, shutdown: () => app.close() });
  await app.listen({ host: config.host, port: config.port });
  logger.info({ backend: config.backend, host: config.host, port: config.port }, 'agent ready');
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
