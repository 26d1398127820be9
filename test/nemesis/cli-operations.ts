/**
 * The nemesis workload's operations through the stock charm CLI. The CLI encrypts names and bytes on the client
 * (`charm:/a` is stored as `/<E(a)>`, its bytes as ciphertext), so its files are a tree of their own: the history
 * names them `charm:/a`, never `/a`, and they are read back through the CLI, which decrypts them.
 */
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import type { CharmClient } from '../harness/charm-cli.ts';
import { ABSENT, type Outcome } from './checker.ts';

const TIMEOUT_MS = 30_000;

/** The history's name of a CLI path: the CLI's own syntax. */
export const cliPath = (path: string) => `charm:${path}`;

/** The CLI prints the gateway's status on an answered failure ("server error: 503 …"); else no answer came. */
function failureOutcome(output: string): Outcome {
  return /server error: \d{3}/.test(output) ? 'refused' : 'unknown';
}

/** `charm fs cp`: the local file at localPath (holding bytes) to path. */
export async function cliWrite(
  charm: CharmClient,
  path: string,
  bytes: Buffer,
  localPath: string,
): Promise<Outcome> {
  writeFileSync(localPath, bytes);
  try {
    const result = await charm.attempt(['fs', 'cp', localPath, cliPath(path)], { timeoutMs: TIMEOUT_MS });
    return result.code === 0 ? 'ok' : failureOutcome(result.stderr + result.stdout);
  } finally {
    rmSync(localPath, { force: true });
  }
}

/** `charm fs rm` (recursive on the server). A delete that failed part-way may have been applied: never refused. */
export async function cliDelete(charm: CharmClient, path: string): Promise<Outcome> {
  const result = await charm.attempt(['fs', 'rm', cliPath(path)], { timeoutMs: TIMEOUT_MS });
  return result.code === 0 ? 'ok' : 'unknown';
}

/** `charm fs cat`: the sha256 of the decrypted bytes, ABSENT for a missing file, undefined when no answer came. */
export async function cliRead(charm: CharmClient, path: string): Promise<string | undefined> {
  const result = await charm.attempt(['fs', 'cat', cliPath(path)], { timeoutMs: TIMEOUT_MS });
  if (result.code === 0) return createHash('sha256').update(result.stdout).digest('hex');
  if (/file does not exist/.test(result.stderr + result.stdout)) return ABSENT;
  return undefined;
}
