import { LockTimeoutError, type PathLock } from '@cring/manifest';
import { BusyPathError, StateUnavailableError } from '../errors.ts';
import type { GatewayServices } from './services.ts';

/** Takes a manifest lock; a dead Redis or a long-running change to a related path answer 503 with the reason. */
export async function lockPath(services: GatewayServices, charmId: string, path: string): Promise<PathLock> {
  try {
    return await services.manifest.lockPath(charmId, path, { waitMs: services.config.lockWaitMs });
  } catch (err) {
    if (err instanceof LockTimeoutError) throw new BusyPathError(err.message);
    throw new StateUnavailableError(err);
  }
}
