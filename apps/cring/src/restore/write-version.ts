// Writing one restored file the way the gateway writes an upload: under the path's lock, with a write intent
// recorded before any owner is touched, on W owners (stand-ins after them), each write fenced; then committed as
// the path's next version, and jobs for the other owners and S3. A restored file is a new write at a new version,
// so a newer tombstone does not hide it; a write that misses the quorum is rolled back like a failed upload.
import type { BackupStore } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import type { JobQueues } from '@cring/jobs';
import { fencedBody, type Manifest, type PathLock, rollBackIntent } from '@cring/manifest';

export interface RestoreWriter {
  manifest: Manifest;
  queues: Pick<JobQueues, 'enqueueForBackend' | 'enqueueForS3'>;
  store: BackupStore;
  clientFor(name: string): BackendClient | undefined;
  /** The user's backends in preference order (the first `replicationFactor` are the owners). */
  preference(charmId: string): string[];
  replicationFactor: number;
  writeQuorum: number;
  lockWaitMs: number;
}

export interface RestoredFile {
  versionId: string;
  sha256: string;
  size: number;
  mode: number;
}

export type WriteOutcome =
  /** `warning`: recorded, but its jobs could not be enqueued (the healer does it) or Redis replicas lag. */
  | { outcome: 'restored'; version: number; holders: string[]; warning?: string }
  /** Under the lock the path turned out to hold these bytes already (written meanwhile). */
  | { outcome: 'unchanged' };

/** The restored file did not become a version: `message` says what happened to the backends it reached. */
export class RestoreWriteError extends Error {
  override name = 'RestoreWriteError';
}

export async function writeRestoredVersion(
  writer: RestoreWriter,
  charmId: string,
  path: string,
  file: RestoredFile,
): Promise<WriteOutcome> {
  const { manifest } = writer;
  const lock = await manifest.lockPath(charmId, path, { waitMs: writer.lockWaitMs });
  try {
    // The plan was made without the lock: a write since may already have put these bytes back.
    const governing = await manifest.governing(charmId, path);
    if (governing?.kind === 'file' && governing.path === path && governing.sha256 === file.sha256) {
      return { outcome: 'unchanged' };
    }
    const preference = writer.preference(charmId);
    const owners = preference.slice(0, writer.replicationFactor);
    const intent = await manifest.openIntent(charmId, lock, preference.slice(0, writer.writeQuorum));
    const holders: string[] = [];
    const failures: string[] = [];
    // A refused connection carried no byte: nothing to roll back there.
    const unreached: string[] = [];
    for (const name of preference) {
      if (holders.length === writer.writeQuorum) break;
      const client = writer.clientFor(name);
      if (!client) continue;
      try {
        if (!intent.touched.includes(name)) await manifest.touchIntent(charmId, lock, name);
        await putVersion(writer, client, lock, charmId, path, file);
        holders.push(name);
      } catch (err) {
        if ((err as Error).name === 'LockLostError') throw err;
        failures.push(`${name}: ${(err as Error).message}`);
        if ((err as { cause?: NodeJS.ErrnoException }).cause?.code === 'ECONNREFUSED') unreached.push(name);
      }
    }
    if (holders.length < writer.writeQuorum) {
      throw new RestoreWriteError(
        `written on ${holders.length} of the ${writer.writeQuorum} backends a write needs (${failures.join('; ')}); ${await rollBack(writer, charmId, lock, unreached)}`,
      );
    }
    let version: number;
    try {
      version = await manifest.commitWrite(
        charmId,
        path,
        { sha256: file.sha256, size: file.size, mode: file.mode, holders },
        lock,
      );
    } catch (err) {
      // Not recorded: the bytes on the holders are not a version; undo them (Redis away: the healer does).
      const after = await rollBack(writer, charmId, lock).catch(
        (e: Error) => `left to the healer's roll-back (${e.message})`,
      );
      throw new RestoreWriteError(
        `written on ${holders.join(', ')} but not recorded (${(err as Error).message}); ${after}`,
      );
    }
    const job = {
      charmId,
      path,
      version,
      sha256: file.sha256,
      size: file.size,
      mode: file.mode,
      sources: holders,
    };
    // Recorded on a quorum: restored. What follows only spreads it; the healer repairs what it misses.
    const warnings: string[] = [];
    await Promise.all([
      ...owners
        .filter((owner) => !holders.includes(owner))
        .map((owner) => writer.queues.enqueueForBackend(owner, { kind: 'replicate', ...job })),
      writer.queues.enqueueForS3({ kind: 'backup', ...job }),
    ]).catch((err: Error) =>
      warnings.push(`could not enqueue its copies (${err.message}); the healer's next scan does`),
    );
    await manifest
      .confirmReplicated()
      .catch((err: Error) => warnings.push(`not yet on the Redis replicas (${err.message})`));
    return { outcome: 'restored', version, holders, warning: warnings.join('; ') || undefined };
  } finally {
    await lock.release().catch(() => {});
  }
}

/** Streams the backup's version to one backend; the backend keeps its old file unless sha256 and size match. */
async function putVersion(
  writer: RestoreWriter,
  client: BackendClient,
  lock: PathLock,
  charmId: string,
  path: string,
  file: RestoredFile,
): Promise<void> {
  const object = await writer.store.getVersion(charmId, path, file.versionId);
  if (!object) throw new Error(`version ${file.versionId} is no longer in the backup`);
  await client.putFile(charmId, path, {
    body: await fencedBody(lock, object.body),
    size: file.size,
    mode: file.mode,
    expectSha256: file.sha256,
  });
}

/** A missed quorum: the touched backends go back to the last acknowledged state (else the healer finishes it). */
async function rollBack(
  writer: RestoreWriter,
  charmId: string,
  lock: PathLock,
  unreached: string[] = [],
): Promise<string> {
  const intent = await writer.manifest.failIntent(charmId, lock, unreached);
  if (!intent) return 'its write intent is gone';
  const outcome = await rollBackIntent(charmId, intent, (name) => writer.clientFor(name), lock);
  if (outcome.failed.length > 0) {
    const reasons = outcome.failed.map((f) => `${f.backend}: ${f.reason}`).join('; ');
    return `rolling back did not finish (${reasons}): reads keep the last acknowledged state and the healer completes it`;
  }
  await writer.manifest.clearIntent(charmId, lock, intent.fence);
  const changed = [...outcome.restored, ...outcome.deleted];
  return changed.length > 0
    ? `${changed.join(', ')} rolled back: nothing was changed`
    : 'nothing was changed';
}
