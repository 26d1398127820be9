/**
 * Rolling a failed or abandoned write back to the path's last acknowledged state, on every backend it touched.
 * Run by the gateway right after the write failed, or by the healer once the writer is gone (its lock lost).
 *
 * | the path before the write (intent.previous) | on each touched backend                        | why it is safe |
 * |---------------------------------------------|------------------------------------------------|----------------|
 * | a file version with an untouched holder      | copy that version back from the holder, sha256 checked (a mismatch aborts before the backend replaces anything) | the bytes restored are the acknowledged ones |
 * | a file version, every holder touched         | nothing: reported failed, the intent stays open | reads keep avoiding the touched backends; nothing is guessed |
 * | no file (new path, or a tombstone)           | delete the path if it is a file there          | the write was never acknowledged; a directory is never removed (a write cannot have made one) |
 *
 * The caller holds the path's lock; every backend write is preceded by a check that it still does, so a roll-back
 * paused past the TTL never lands over a newer writer's bytes.
 */
import { type BackendClient, BackendHttpError, PathIsDirectoryError } from '@cring/charm';
import type { PathLock, WriteIntent } from './manifest.ts';

export interface RollBackOutcome {
  /** Backends that hold the previous version again. */
  restored: string[];
  /** Backends whose unacknowledged file was deleted (the path was new). */
  deleted: string[];
  /** Backends that held nothing to undo. */
  unchanged: string[];
  failed: { backend: string; reason: string }[];
}

export async function rollBackIntent(
  charmId: string,
  intent: WriteIntent,
  clientFor: (backend: string) => BackendClient | undefined,
  lock: PathLock,
): Promise<RollBackOutcome> {
  const outcome: RollBackOutcome = { restored: [], deleted: [], unchanged: [], failed: [] };
  const previous = intent.previous?.kind === 'file' ? intent.previous : undefined;
  const sources = previous ? previous.holders.filter((holder) => !intent.touched.includes(holder)) : [];
  for (const backend of intent.touched) {
    const target = clientFor(backend);
    if (!target) {
      outcome.failed.push({ backend, reason: 'not a configured backend' });
      continue;
    }
    try {
      if (previous) {
        await restorePrevious(charmId, intent.path, previous, sources, target, clientFor, lock);
        outcome.restored.push(backend);
      } else if (await deleteIfFile(charmId, intent.path, target, lock)) {
        outcome.deleted.push(backend);
      } else {
        outcome.unchanged.push(backend);
      }
    } catch (err) {
      outcome.failed.push({ backend, reason: (err as Error).message });
    }
  }
  return outcome;
}

async function restorePrevious(
  charmId: string,
  path: string,
  previous: { sha256: string; size: number; mode: number },
  sources: string[],
  target: BackendClient,
  clientFor: (backend: string) => BackendClient | undefined,
  lock: PathLock,
): Promise<void> {
  const reasons: string[] = [];
  for (const source of sources) {
    const client = clientFor(source);
    if (!client) continue;
    try {
      const file = await client.getFile(charmId, path);
      if (!file) {
        reasons.push(`${source} no longer has it`);
        continue;
      }
      try {
        await lock.assertHeld();
      } catch (err) {
        file.body.destroy();
        throw err;
      }
      await target.putFile(charmId, path, {
        body: file.body,
        size: previous.size,
        mode: previous.mode,
        expectSha256: previous.sha256,
      });
      return;
    } catch (err) {
      if ((err as Error).name === 'LockLostError') throw err;
      reasons.push(`${source}: ${(err as Error).message}`);
    }
  }
  throw new Error(
    `no untouched backend could give back the previous version${reasons.length ? ` (${reasons.join('; ')})` : ''}`,
  );
}

/** Deletes path on target when it is a file there; a directory or nothing is left alone. */
async function deleteIfFile(
  charmId: string,
  path: string,
  target: BackendClient,
  lock: PathLock,
): Promise<boolean> {
  let present: boolean;
  try {
    const file = await target.getFile(charmId, path);
    file?.body.destroy();
    present = file !== undefined;
  } catch (err) {
    if (err instanceof PathIsDirectoryError) return false;
    if (err instanceof BackendHttpError && err.missingUser) return false; // nothing of this user there
    throw err;
  }
  if (!present) return false;
  await lock.assertHeld();
  await target.deletePath(charmId, path);
  return true;
}
