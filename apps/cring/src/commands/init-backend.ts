import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentOf, type CringConfig, UsageError } from '../config.ts';

/**
 * `cring init-backend --from <name> --to <name>`: prepares an empty new backend from an existing one over the
 * network: a snapshot of the source's account DB from its agent, installed by the new backend's agent (with the
 * server key it holds, a fresh marker, no link tokens). The new backend's server must not run yet. Files follow
 * with a healer scan.
 */
export async function initBackend(
  config: CringConfig,
  from: string | undefined,
  to: string | undefined,
): Promise<string> {
  if (!from || !to)
    throw new UsageError('init-backend needs --from <existing backend> and --to <new backend>');
  if (from === to) throw new UsageError('--from and --to name the same backend');
  const source = agentOf(config, from);
  const target = agentOf(config, to);
  const dir = mkdtempSync(join(tmpdir(), 'cring-init-'));
  try {
    const file = join(dir, 'accounts.db');
    await source.downloadAccountsDb(file);
    await target.uploadAccountsDb('init', file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return [
    `prepared ${to} from ${from}: server key and account rows copied.`,
    `next: start ${to}'s charm server, add it to CRING_BACKENDS and CRING_AGENTS everywhere, restart the gateway and workers,`,
    'then run `healer --scan` to copy files to their new owners (and `healer --scan --prune` afterwards).',
  ].join('\n');
}
