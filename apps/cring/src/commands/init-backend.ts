import { initBackendFrom } from '@cring/accounts';
import { type CringConfig, dataDirOf, UsageError } from '../config.ts';

/**
 * `cring init-backend --from <name> --to <name>`: prepares an empty new backend's data dir from an existing one
 * (the server key and every account); the new backend's server must not run yet. Files follow with a healer scan.
 */
export function initBackend(config: CringConfig, from: string | undefined, to: string | undefined): string {
  if (!from || !to)
    throw new UsageError('init-backend needs --from <existing backend> and --to <new backend>');
  if (from === to) throw new UsageError('--from and --to name the same backend');
  initBackendFrom(dataDirOf(config, from), dataDirOf(config, to));
  return [
    `prepared ${to} from ${from}: server key and account rows copied.`,
    `next: start ${to}'s charm server, add it to CRING_BACKENDS everywhere, restart the gateway and workers,`,
    'then run `healer --scan` to copy files to their new owners (and `healer --scan --prune` afterwards).',
  ].join('\n');
}
