import { LockTimeoutError, type PathLock, type WriteIntent } from '@cring/manifest';
import { BusyPathError, GatewayError, StateUnavailableError } from '../errors.ts';
import type { GatewayServices } from './services.ts';

/** A dead Redis or a long-running change to a related path answer 503 with the reason; our own refusals pass. */
function lockFailure(err: unknown): unknown {
  if (err instanceof LockTimeoutError) return new BusyPathError(err.message);
  if (err instanceof GatewayError) return err;
  return new StateUnavailableError(err);
}

/** Takes a manifest lock. */
export async function lockPath(services: GatewayServices, charmId: string, path: string): Promise<PathLock> {
  try {
    return await services.manifest.lockPath(charmId, path, { waitMs: services.config.lockWaitMs });
  } catch (err) {
    throw lockFailure(err);
  }
}

/**
 * Takes a write's lock and records its write intent in one round trip, naming the backends `touched` gives just
 * before each attempt (it may throw, e.g. when too few backends have room: nothing is taken then).
 */
export async function lockPathForWrite(
  services: GatewayServices,
  charmId: string,
  path: string,
  touched: () => string[],
): Promise<{ lock: PathLock; intent: WriteIntent }> {
  try {
    return await services.manifest.lockPathForWrite(charmId, path, touched, {
      waitMs: services.config.lockWaitMs,
    });
  } catch (err) {
    throw lockFailure(err);
  }
}
