/**
 * The nemesis workload's ways to reach the cluster: raw HTTP through the gateway, and the stock charm CLI. The CLI
 * encrypts names and bytes on the client (`charm:/a` is stored as `/<E(a)>`, its bytes as ciphertext), so its
 * files are a tree of their own: the history names them `charm:/a`, never `/a`, and reads them back through the
 * CLI, which decrypts them.
 */
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '@cring/local-cluster';
import type { CharmClient } from '../harness/charm-cli.ts';
import { gatewayUrl, uploadBody } from '../harness/raw-http.ts';
import { ABSENT, type Outcome } from './checker.ts';

const TIMEOUT_MS = 30_000;
const sha256 = (bytes: Buffer | string) => createHash('sha256').update(bytes).digest('hex');

export interface Channel {
  /** The history's name of a path reached this way. */
  name(path: string): string;
  write(path: string, bytes: Buffer): Promise<Outcome>;
  /** Recursive on the server. A delete that failed part-way may have been applied: never `refused`. */
  remove(path: string): Promise<Outcome>;
  /** The sha256 of the file's bytes, ABSENT for a missing file, undefined when no answer came. */
  read(path: string): Promise<string | undefined>;
}

export function httpChannel(cluster: Cluster, authorization: string): Channel {
  const call = (path: string, init: RequestInit = {}) =>
    fetch(gatewayUrl(cluster, `/v1/fs${path}`), {
      ...init,
      headers: { Authorization: authorization, ...init.headers },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  return {
    name: (path) => path,
    async write(path, bytes) {
      const { body, contentType } = uploadBody(bytes);
      try {
        const response = await call(`${path}?mode=420`, {
          method: 'POST',
          headers: { 'Content-Type': contentType },
          body,
        });
        await response.arrayBuffer();
        return response.status === 200 ? 'ok' : 'refused';
      } catch {
        return 'unknown';
      }
    },
    async remove(path) {
      try {
        const response = await call(path, { method: 'DELETE' });
        await response.arrayBuffer();
        return response.status === 200 ? 'ok' : 'unknown';
      } catch {
        return 'unknown';
      }
    },
    async read(path) {
      try {
        const response = await call(path);
        const body = Buffer.from(await response.arrayBuffer());
        const isFile =
          response.status === 200 && !(response.headers.get('content-type') ?? '').includes('json');
        if (isFile) return sha256(body);
        return response.status === 404 ? ABSENT : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/** The CLI prints the gateway's status on an answered failure ("server error: 503 …"); else no answer came. */
function cliFailure(output: string): Outcome {
  return /server error: \d{3}/.test(output) ? 'refused' : 'unknown';
}

export function cliChannel(charm: CharmClient, workDir: string): Channel {
  const name = (path: string) => `charm:${path}`;
  const run = (args: string[]) => charm.attempt(args, { timeoutMs: TIMEOUT_MS });
  let files = 0;
  return {
    name,
    async write(path, bytes) {
      const local = join(workDir, `cli-upload-${++files}.bin`);
      writeFileSync(local, bytes);
      try {
        const result = await run(['fs', 'cp', local, name(path)]);
        return result.code === 0 ? 'ok' : cliFailure(result.stderr + result.stdout);
      } finally {
        rmSync(local, { force: true });
      }
    },
    async remove(path) {
      return (await run(['fs', 'rm', name(path)])).code === 0 ? 'ok' : 'unknown';
    },
    async read(path) {
      const result = await run(['fs', 'cat', name(path)]);
      if (result.code === 0) return sha256(result.stdout);
      return /file does not exist/.test(result.stderr + result.stdout) ? ABSENT : undefined;
    },
  };
}
