import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts } from './free-port.ts';
import { ManagedProcess } from './managed-process.ts';
import { acceptsTcp, answersOk } from './probes.ts';
import type { TlsFiles } from './tls.ts';

export interface CharmBackendInfo {
  name: string;
  httpUrl: string;
  httpPort: number;
  sshPort: number;
  healthUrl: string;
  dataDir: string;
  /** Its TMPDIR: v0.12.6 leaves the temp file of every upload above 32 MiB there, so it is kept in the run. */
  tmpDir: string;
}

export interface CharmBackend {
  info: CharmBackendInfo;
  process: ManagedProcess;
}

/** Prepares (does not start) a real `charm serve` on 127.0.0.1 with its own ports and data dir. */
export async function createCharmBackend(options: {
  name: string;
  charmBin: string;
  runDir: string;
  publicUrl: string;
  /** Serve HTTPS (and health over TLS) with these files; the CA is used for the readiness check. */
  tls?: TlsFiles;
}): Promise<CharmBackend> {
  const [sshPort, httpPort, healthPort, statsPort] = (await freePorts(4)) as [number, number, number, number];
  const dataDir = join(options.runDir, 'backends', options.name);
  mkdirSync(join(dataDir, '.ssh'), { recursive: true, mode: 0o700 });
  const tmpDir = join(options.runDir, 'tmp', options.name);
  mkdirSync(tmpDir, { recursive: true });
  const info: CharmBackendInfo = {
    name: options.name,
    httpUrl: `${options.tls ? 'https' : 'http'}://127.0.0.1:${httpPort}`,
    httpPort,
    sshPort,
    healthUrl: `${options.tls ? 'https' : 'http'}://127.0.0.1:${healthPort}/`,
    dataDir,
    tmpDir,
  };
  const ca = options.tls ? readFileSync(options.tls.caFile) : undefined;
  const process = new ManagedProcess({
    name: `charm backend ${options.name}`,
    command: options.charmBin,
    args: ['serve'],
    env: {
      CHARM_SERVER_DATA_DIR: dataDir,
      CHARM_SERVER_BIND_ADDRESS: '127.0.0.1',
      CHARM_SERVER_HOST: '127.0.0.1',
      CHARM_SERVER_PUBLIC_URL: options.publicUrl,
      TMPDIR: tmpDir,
      ...(options.tls
        ? {
            CHARM_SERVER_USE_TLS: 'true',
            CHARM_SERVER_TLS_CERT_FILE: options.tls.certFile,
            CHARM_SERVER_TLS_KEY_FILE: options.tls.keyFile,
          }
        : {}),
      CHARM_SERVER_SSH_PORT: String(sshPort),
      CHARM_SERVER_HTTP_PORT: String(httpPort),
      CHARM_SERVER_HEALTH_PORT: String(healthPort),
      CHARM_SERVER_STATS_PORT: String(statsPort),
    },
    logFile: join(options.runDir, 'logs', `${options.name}.log`),
    ready: async () =>
      (await answersOk(info.healthUrl, ca)) && (await acceptsTcp(sshPort)) && (await acceptsTcp(httpPort)),
  });
  return { info, process };
}

export const SERVER_KEY_FILE = join('.ssh', 'charm_server_ed25519');

/** Copies the server key (private and .pub: v0.12.6 wants both) so every backend signs and verifies alike. */
export function shareServerKey(fromDataDir: string, toDataDir: string): void {
  for (const suffix of ['', '.pub']) {
    copyFileSync(join(fromDataDir, SERVER_KEY_FILE + suffix), join(toDataDir, SERVER_KEY_FILE + suffix));
  }
}
