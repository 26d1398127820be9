import type { Readable } from 'node:stream';
import type { PathLock } from './manifest.ts';

/**
 * Confirms the writer (a replicator job, `cring restore`) still holds its path lock right before it writes to a
 * backend, and cuts the write's body if the lock is lost meanwhile (the backend then keeps its old file: an
 * incomplete form is never written). A writer frozen past the TTL thus never lands old bytes over a newer one's.
 */
export async function fencedBody(lock: PathLock, body: Readable): Promise<Readable> {
  try {
    await lock.assertHeld();
  } catch (err) {
    body.destroy();
    throw err;
  }
  const cut = () => body.destroy(lock.signal.reason as Error);
  lock.signal.addEventListener('abort', cut, { once: true });
  body.once('close', () => lock.signal.removeEventListener('abort', cut));
  return body;
}
