import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { LockLostError, type PathLock } from '@cring/manifest';
import { createRemainingOwnerCopies, type RemainingOwnerOutcome } from './remaining-owners.ts';

const charm3 = { name: 'charm3' } as Backend;
const quiet = { warn() {}, error() {} };

/** Records, in order, what reaches the manifest, the queues and the backend. */
function recorder(options: { addHolder?: () => Promise<boolean>; cancel?: () => Promise<boolean> } = {}) {
  const steps: string[] = [];
  const outcomes: RemainingOwnerOutcome[] = [];
  const copies = createRemainingOwnerCopies({
    manifest: {
      async addHolder(charmId, path, version, backend, lock) {
        steps.push(`addHolder ${charmId} ${path} v${version} ${backend} fence ${lock?.fence}`);
        return options.addHolder ? options.addHolder() : true;
      },
      async removePending(charmId, backend, jobId) {
        steps.push(`removePending ${charmId} ${backend} ${jobId}`);
      },
    },
    queues: {
      async cancel(backend, jobId) {
        steps.push(`cancel ${backend} ${jobId}`);
        return options.cancel ? options.cancel() : true;
      },
      async promote(backend, jobId) {
        steps.push(`promote ${backend} ${jobId}`);
      },
    },
    onOutcome: (outcome) => outcomes.push(outcome),
  });
  return { steps, outcomes, copies };
}

function lockOf(aborted = false): PathLock {
  const controller = new AbortController();
  if (aborted) controller.abort(new LockLostError('/p', 'taken'));
  return {
    path: '/p',
    fence: 7,
    signal: controller.signal,
    assertHeld: async () => {},
    release: async () => {},
    holdUntil: () => {},
  };
}

function write(steps: string[], overrides: { send?: () => Promise<unknown>; lock?: PathLock } = {}) {
  let enqueue = () => {};
  const enqueued = new Promise<void>((resolve) => {
    enqueue = () => {
      steps.push('jobs sent');
      resolve();
    };
  });
  return {
    enqueue,
    write: {
      charmId: 'u1',
      path: '/p',
      version: 12,
      lock: overrides.lock ?? lockOf(),
      targets: [{ backend: charm3, jobId: 'replicate-u1-12' }],
      send: async () => {
        steps.push('POST charm3');
        return overrides.send?.();
      },
      enqueued,
      log: quiet,
    },
  };
}

describe('copies to the remaining owners', () => {
  it('records the owner only after its POST and the jobs were sent, then cancels the fallback and its marker', async () => {
    const { steps, outcomes, copies } = recorder();
    const { write: w, enqueue } = write(steps);
    const done = copies.copy(w);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(steps, ['POST charm3'], 'nothing is recorded before the fallback job was sent');
    enqueue();
    await done;
    assert.deepEqual(steps, [
      'POST charm3',
      'jobs sent',
      'addHolder u1 /p v12 charm3 fence 7',
      'cancel charm3 replicate-u1-12',
      'removePending u1 charm3 replicate-u1-12',
    ]);
    assert.deepEqual(outcomes, ['recorded']);
  });

  it('a failed POST records nothing and runs the fallback job at once', async () => {
    const { steps, outcomes, copies } = recorder();
    const { write: w, enqueue } = write(steps, {
      send: () => Promise.reject(new Error('charm3 answered 500')),
    });
    const done = copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(steps, ['POST charm3', 'jobs sent', 'promote charm3 replicate-u1-12']);
    assert.deepEqual(outcomes, ['failed']);
  });

  it('a lost lock sends no byte and leaves the copy to the job', async () => {
    const { steps, outcomes, copies } = recorder();
    const { write: w, enqueue } = write(steps, { lock: lockOf(true) });
    const done = copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(steps, ['jobs sent'], 'no POST, nothing recorded, cancelled or promoted');
    assert.deepEqual(outcomes, ['skipped']);
  });

  it('a holder the manifest refuses (lock lost meanwhile) keeps the fallback job and its marker', async () => {
    const { steps, outcomes, copies } = recorder({
      addHolder: () => Promise.reject(new LockLostError('/p', 'expired')),
    });
    const { write: w, enqueue } = write(steps);
    const done = copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(steps, ['POST charm3', 'jobs sent', 'addHolder u1 /p v12 charm3 fence 7']);
    assert.deepEqual(outcomes, ['not-recorded']);
  });

  it('a fallback that already started keeps its marker: the job clears it when it ends', async () => {
    const { steps, outcomes, copies } = recorder({ cancel: async () => false });
    const { write: w, enqueue } = write(steps);
    const done = copies.copy(w);
    enqueue();
    await done;
    assert.deepEqual(steps.slice(-2), [
      'addHolder u1 /p v12 charm3 fence 7',
      'cancel charm3 replicate-u1-12',
    ]);
    assert.deepEqual(outcomes, ['recorded']);
  });

  it('drain waits for the copies in flight', async () => {
    const { steps, copies } = recorder();
    const { write: w, enqueue } = write(steps);
    void copies.copy(w);
    let drained = false;
    const draining = copies.drain().then(() => {
      drained = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(drained, false);
    enqueue();
    await draining;
    assert.equal(steps.at(-1), 'removePending u1 charm3 replicate-u1-12');
  });
});
