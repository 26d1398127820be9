import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';

export interface CharmResult {
  stdout: string;
  stderr: string;
}

export interface CharmClient {
  dataDir: string;
  /** Runs `charm <args>` with stdout not a TTY; rejects with the output when it exits non-zero. */
  run(args: string[], options?: { timeoutMs?: number }): Promise<CharmResult>;
  /** Like run, but resolves with the exit code instead of rejecting. */
  attempt(args: string[], options?: { timeoutMs?: number }): Promise<CharmResult & { code: number }>;
}

/** The real charm CLI with its own data dir (its identity), aimed at host:ports. */
export function charmClient(options: {
  charmBin: string;
  dataDir: string;
  sshPort: number;
  httpPort: number;
  host?: string;
  /** A CA file the Go client must trust (SSL_CERT_FILE), when the cluster runs HTTPS. */
  caFile?: string;
}): CharmClient {
  mkdirSync(options.dataDir, { recursive: true });
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: options.dataDir,
    CHARM_HOST: options.host ?? '127.0.0.1',
    CHARM_SSH_PORT: String(options.sshPort),
    CHARM_HTTP_PORT: String(options.httpPort),
    CHARM_DATA_DIR: options.dataDir,
    ...(options.caFile ? { SSL_CERT_FILE: options.caFile } : {}),
  };
  const attempt = (args: string[], { timeoutMs = 60_000 } = {}) =>
    new Promise<CharmResult & { code: number }>((resolve) => {
      execFile(
        options.charmBin,
        args,
        { env, timeout: timeoutMs, maxBuffer: 64 << 20 },
        (err, stdout, stderr) => {
          const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
          resolve({ stdout, stderr, code });
        },
      );
    });
  return {
    dataDir: options.dataDir,
    attempt,
    async run(args, runOptions) {
      const result = await attempt(args, runOptions);
      if (result.code !== 0) {
        throw new Error(
          `charm ${args.join(' ')} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`,
        );
      }
      return result;
    },
  };
}
