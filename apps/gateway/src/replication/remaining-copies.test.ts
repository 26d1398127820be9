import assert from 'node:assert/strict';
import { text } from 'node:stream/consumers';
import { describe, it } from 'node:test';
import { LockLostError, type PathLock } from '@cring/manifest';
import {
  backupCopyOf,
  createRemainingCopies,
  ownerCopy,
  type RemainingCopyOutcome,
} from './remaining-copies.ts';

const quiet = { warn() {}, error() {} };

function lockOf(path = '/p', aborted = false): PathLock {
  const controller = new AbortController();
  if (aborted) controller.abort(new LockLostError(path, 'taken'));
  return {
    path,
    fence: 7,
    signal: controller.signal,
    assertHeld: async () => {},
    release: async () => {},
    holdUntil: () => {},
  };
}

/** Records, in order, what reaches the manifest, the queues, the owner and S3. */
function recorder(options: { addHolder?: () => Promise<boolean>; cancel?: () => Promise<boolean> } = {}) {
  const steps: string[] = [];
  const outcomes: RemainingCopyOutcome[] = [];
  const manifest = {
    async addHolder(charmId: string, path: string, version: number, backend: string, lock?: PathLock) {
      steps.push(`addHolder ${charmId} ${path} v${version} ${backend} fence ${lock?.fence}`);
      return options.addHolder ? options.addHolder() : true;
    },
    async removePending(charmId: string, target: string, jobId: string) {
      steps.push(`removePending ${charmId} ${target} ${jobId}`);
    },
    async lockPath(_charmId: string, path: string, options: { waitMs: number }) {
      steps.push(`lock ${path} wait ${options.waitMs}`);
      return { ...lockOf(path), release: async () => void steps.push(`release ${path}`) };
    },
  };
  const copies = createRemainingCopies({
    manifest,
    queues: {
      async cancel(target, jobId) {
        steps.push(`cancel ${target} ${jobId}`);
        return options.cancel ? options.cancel() : true;
      },
      async promote(target, jobId) {
        steps.push(`promote ${target} ${jobId}`);
      },
    },
    onOutcome: (_target, outcome) => outcomes.push(outcome),
  });
  return { steps, outcomes, copies, manifest };
}

function write(
  { steps, manifest }: ReturnType<typeof recorder>,
  overrides: { post?: () => Promise<unknown>; lock?: PathLock } = {},
) {
  let enqueue = () => {};
  const enqueued = new Promise<void>((resolve) => {
    enqueue = () => {
      steps.push('jobs sent');
      resolve();
    };
  });
  const given = overrides.lock ?? lockOf();
  const lock: PathLock = {
    ...given,
    async assertHeld() {
      steps.push('assertHeld');
      return given.assertHeld();
    },
  };
  const acknowledged = { charmId: 'u1', path: '/p', version: 12, lock };
  const owner = ownerCopy(manifest, acknowledged, 'charm3', 'replicate-u1-12', async () => {
    steps.push('POST charm3');
    return overrides.post?.();
  });
  return { enqueue, write: { charmId: 'u1', lock, targets: [owner], enqueued, log: quiet }, acknowledged };
}

/** The S3 copy of the 5-byte file 'hello', version 12 (its sha256 is not checked by these fakes). */
const helloBackup = (
  manifest: Parameters<typeof backupCopyOf>[0],
  store: Parameters<typeof backupCopyOf>[1],
  acknowledged: Parameters<typeof backupCopyOf>[2],
) =>
  backupCopyOf(manifest, store, acknowledged, 'backup-u1-12', {
    bytes: Buffer.from('hello'),
    size: 5,
    sha256: 'aa'.repeat(32),
    mode: 0o644,
  });

describe('remaining copies of a small write', () => {
  it('records an owner only after its POST and the jobs were sent, then cancels the fallback and its marker', async () => {
    const r = recorder();
    const { write: w, enqueue } = write(r);
    const done = r.copies.copy(w);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(r.steps, ['assertHeld', 'POST charm3'], 'nothing is recorded before the jobs were sent');
    enqueue();
    await done;
    assert.deepEqual(r.steps, [
      'assertHeld',
      'POST charm3',
      'jobs sent',
      'addHolder u1 /p v12 charm3 fence 7',
      'removePending u1 charm3 replicate-u1-12',
      'cancel charm3 replicate-u1-12',
    ]);
    assert.deepEqual(r.outcomes, ['recorded']);
  });

  it('a failed POST records nothing and runs the fallback job at once', async () => {
    const r = recorder();
    const { write: w, enqueue } = write(r, { post: () => Promise.reject(new Error('charm3 answered 500')) });
    const done = r.copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(r.steps, ['assertHeld', 'jobs sent', 'POST charm3', 'promote charm3 replicate-u1-12']);
    assert.deepEqual(r.outcomes, ['failed']);
  });

  it('a lost lock sends nothing and leaves the copy to the job', async () => {
    const r = recorder();
    const { write: w, enqueue } = write(r, { lock: lockOf('/p', true) });
    const done = r.copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(r.steps, ['jobs sent'], 'no POST, nothing recorded, cancelled or promoted');
    assert.deepEqual(r.outcomes, ['skipped']);
  });

  it('a lock Redis no longer confirms (this process paused past its TTL) sends no byte; the job runs now', async () => {
    const r = recorder();
    const paused = {
      ...lockOf(),
      assertHeld: () => Promise.reject(new LockLostError('/p', 'it expired or a newer holder took it')),
    };
    const { write: w, enqueue } = write(r, { lock: paused });
    const done = r.copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(r.steps, ['assertHeld', 'jobs sent', 'promote charm3 replicate-u1-12']);
    assert.deepEqual(r.outcomes, ['failed']);
  });

  it('a holder the manifest refuses (lock lost meanwhile) keeps the fallback job and its marker', async () => {
    const r = recorder({ addHolder: () => Promise.reject(new LockLostError('/p', 'expired')) });
    const { write: w, enqueue } = write(r);
    const done = r.copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(r.steps, [
      'assertHeld',
      'jobs sent',
      'POST charm3',
      'addHolder u1 /p v12 charm3 fence 7',
    ]);
    assert.deepEqual(r.outcomes, ['not-recorded']);
  });

  it('a fallback that already started (its delay passed) is left to end: the marker goes, the job stays', async () => {
    const r = recorder({ cancel: async () => false });
    const { write: w, enqueue } = write(r);
    const done = r.copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(r.steps.slice(-3), [
      'addHolder u1 /p v12 charm3 fence 7',
      'removePending u1 charm3 replicate-u1-12',
      'cancel charm3 replicate-u1-12',
    ]);
    assert.deepEqual(r.outcomes, ['recorded']);
  });

  it("the S3 copy puts the file's bytes under the path's S3 lock, then cancels the backup job", async () => {
    const r = recorder();
    const { write: w, enqueue, acknowledged } = write(r);
    const puts: string[] = [];
    const store = {
      async put(charmId: string, path: string, file: { body: NodeJS.ReadableStream; version: number }) {
        r.steps.push(`put ${charmId} ${path} v${file.version}`);
        puts.push(await text(file.body));
      },
    };
    const backup = helloBackup(r.manifest, store, acknowledged);
    const done = r.copies.copy({ ...w, targets: [backup] });
    enqueue();
    await done;
    assert.deepEqual(r.steps, [
      'lock s3:/p wait 0',
      'jobs sent', // (sent while the lock was asked for)
      'assertHeld',
      'put u1 /p v12',
      'release s3:/p',
      'removePending u1 s3 backup-u1-12',
      'cancel s3 backup-u1-12',
    ]);
    assert.deepEqual(puts, ['hello']);
  });

  it('the S3 copy of a write whose lock was lost meanwhile puts nothing', async () => {
    const r = recorder();
    const lost = new AbortController();
    const lock = {
      ...lockOf(),
      signal: lost.signal,
      assertHeld: async () => lost.signal.throwIfAborted(),
    };
    const { write: w, enqueue, acknowledged } = write(r, { lock });
    const store = {
      async put() {
        r.steps.push('put');
      },
    };
    const waiting = {
      ...r.manifest,
      async lockPath(charmId: string, path: string, options: { waitMs: number }) {
        lost.abort(new LockLostError('/p', 'expired')); // lost meanwhile (this process paused)
        return r.manifest.lockPath(charmId, path, options);
      },
    };
    const backup = helloBackup(waiting, store, acknowledged);
    const done = r.copies.copy({ ...w, targets: [backup] });
    enqueue();
    await done;
    assert.deepEqual(r.steps, [
      'lock s3:/p wait 0',
      'jobs sent',
      'assertHeld',
      'release s3:/p',
      'promote s3 backup-u1-12',
    ]);
  });

  it('an S3 lock another backup holds leaves the copy to its job at once, without waiting', async () => {
    const r = recorder();
    const { write: w, enqueue, acknowledged } = write(r);
    const busy = {
      async lockPath(_charmId: string, path: string, options: { waitMs: number }) {
        r.steps.push(`lock ${path} wait ${options.waitMs}`);
        throw new Error(`another change to ${path} is still in progress after 0 ms`);
      },
    };
    const store = {
      async put() {
        r.steps.push('put');
      },
    };
    const backup = helloBackup(busy, store, acknowledged);
    const done = r.copies.copy({ ...w, targets: [backup] });
    enqueue();
    await done;
    assert.deepEqual(r.steps, ['lock s3:/p wait 0', 'jobs sent', 'promote s3 backup-u1-12']);
    assert.deepEqual(r.outcomes, ['failed']);
  });

  it('drain waits for the copies in flight', async () => {
    const r = recorder();
    const { write: w, enqueue } = write(r);
    void r.copies.copy(w);
    let drained = false;
    const draining = r.copies.drain().then(() => {
      drained = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(drained, false);
    enqueue();
    await draining;
    assert.equal(r.steps.at(-1), 'cancel charm3 replicate-u1-12');
  });
});
