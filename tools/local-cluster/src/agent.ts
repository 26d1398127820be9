import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './binaries.ts';
import type { CharmBackendInfo } from './charm-backend.ts';
import { freePort } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';
import { answersOk } from './probes.ts';
import type { TlsFiles } from './tls.ts';

/** Prepares (does not start) the agent beside one backend: the only process given that backend's data dir. */
export async function createAgent(options: {
  node: string;
  backend: CharmBackendInfo;
  runDir: string;
  issuer: string;
  logLevel?: string;
  /** The cluster key; by default the backend's own copy (a new backend has none until it is prepared). */
  serverKeyFile?: string;
  port?: number;
  /** Serve HTTPS with these files (clients trust the test CA through NODE_EXTRA_CA_CERTS). */
  tls?: TlsFiles;
  /** Extra settings (tests shorten the temp sweep, set the free-space reserve). */
  env?: Record<string, string>;
}): Promise<{ url: string; process: ManagedProcess }> {
  const port = options.port ?? (await freePort());
  const url = `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  const process = new ManagedProcess({
    name: `agent ${options.backend.name}`,
    command: options.node,
    args: [join(repoRoot, 'apps/agent/src/main.ts')],
    env: {
      CRING_AGENT_BACKEND: options.backend.name,
      CRING_AGENT_DATA_DIR: options.backend.dataDir,
      CRING_AGENT_HOST: '127.0.0.1',
      CRING_AGENT_PORT: String(port),
      CRING_ISSUER: options.issuer,
      // The server's TMPDIR (in the run folder): the agent sweeps the upload temp files v0.12.6 leaks there.
      CRING_AGENT_SERVER_TMP_DIR: options.backend.tmpDir,
      LOG_LEVEL: options.logLevel ?? 'info',
      ...(options.serverKeyFile ? { CRING_SERVER_KEY_FILE: options.serverKeyFile } : {}),
      ...(options.tls
        ? { CRING_AGENT_TLS_CERT_FILE: options.tls.certFile, CRING_AGENT_TLS_KEY_FILE: options.tls.keyFile }
        : {}),
      ...options.env,
    },
    logFile: join(options.runDir, 'logs', `agent-${options.backend.name}.log`),
    ready: () => answersOk(`${url}/healthz`, options.tls ? readFileSync(options.tls.caFile) : undefined),
  });
  return { url, process };
}
