import { type Backend, createBackendClient } from '@cring/charm';
import { fencedBody, type PathLock } from '@cring/manifest';

/**
 * Completes a quorum on a stand-in when the client's body went to the first owners as it arrived and was not
 * kept (a large streamed upload has no spool file): the bytes come from an owner that took the upload, read
 * back on the user's behalf under the write's lock, and are checked against the write's size and sha256 on the
 * way (a mismatch cuts the upload before its closing boundary, so the stand-in writes nothing). Sources are
 * tried in turn; the last failure is thrown when none could provide the bytes.
 */
export async function copyToStandIn(options: {
  charmId: string;
  path: string;
  /** The user's own Authorization header (never stored). */
  authorization: string | undefined;
  lock: PathLock;
  /** Owners that answered 200 to the streamed upload. */
  sources: readonly Backend[];
  target: Backend;
  file: { size: number; sha256: string; mode: number };
}): Promise<void> {
  const { charmId, path, authorization, lock, file } = options;
  const target = createBackendClient({ backend: options.target, userAuthorization: authorization });
  let lastError: unknown = new Error('no owner took the streamed upload, so no copy could be read back');
  try {
    for (const backend of options.sources) {
      const source = createBackendClient({ backend, userAuthorization: authorization });
      try {
        const copy = await source.getFile(charmId, path);
        if (!copy) {
          lastError = new Error(`${backend.name} no longer holds the upload it took`);
          continue;
        }
        await target.putFile(charmId, path, {
          body: await fencedBody(lock, copy.body),
          size: file.size,
          mode: file.mode,
          expectSha256: file.sha256,
        });
        return;
      } catch (err) {
        lock.signal.throwIfAborted();
        lastError = err;
      } finally {
        source.close();
      }
    }
    throw lastError;
  } finally {
    target.close();
  }
}
