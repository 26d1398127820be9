import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { WriteIntent } from '@cring/manifest';
import type { JournaledRefusal, RefusalJournal } from './refusal-journal.ts';
import { createRefusalRecords } from './refusal-records.ts';

const opened: WriteIntent = {
  path: '/p',
  fence: 3,
  atMs: 1_000,
  owner: 'gateway-1',
  state: 'writing',
  touched: ['b1', 'b2'],
};
const unreachable = () => Object.assign(new Error("Stream isn't writeable"), { code: 'ECONNREFUSED' });

/** A manifest whose Redis does not answer the first `failures` records; then records (or declines) them. */
function manifestFailing(failures: number, answer: 'record' | 'decline' = 'record') {
  const calls: string[] = [];
  return {
    calls,
    manifest: {
      async recordFailedIntent(charmId: string, intent: WriteIntent, touched: readonly string[]) {
        calls.push(`${charmId} ${intent.path} ${touched.join(',')}`);
        if (calls.length <= failures) throw unreachable();
        return answer === 'record'
          ? { ...intent, fence: 9, state: 'failed' as const, touched: [...touched] }
          : undefined;
      },
    },
  };
}

/** A write's path lock that records what holds it past its release. */
function heldLock() {
  const holds: Promise<unknown>[] = [];
  return { holds, lock: { holdUntil: (settled: Promise<unknown>) => void holds.push(settled) } };
}
const noLock = heldLock().lock;

/** A journal in memory (refusal-journal.test.ts tests the files). */
function memoryJournal() {
  const notes = new Map<string, JournaledRefusal>();
  let next = 0;
  const journal: RefusalJournal = {
    async save(refusal) {
      const handle = `note-${next++}`;
      notes.set(handle, { ...refusal, savedAtMs: Date.now() });
      return handle;
    },
    async remove(handle) {
      notes.delete(handle);
    },
    async leftovers() {
      return { refusals: [...notes].map(([handle, refusal]) => ({ handle, refusal })), unreadable: [] };
    },
  };
  return { notes, journal };
}

function logs() {
  const lines: { level: string; message: string }[] = [];
  const log = {
    warn: (_fields: object, message: string) => void lines.push({ level: 'warn', message }),
    error: (_fields: object, message: string) => void lines.push({ level: 'error', message }),
  };
  return { lines, log: log as never };
}

async function waitUntil(what: string, check: () => boolean, deadlineMs = 5_000) {
  const giveUpAt = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > giveUpAt) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('refusal records', () => {
  it('records at once when Redis answers: nothing awaited, the answer gets the stored intent', async () => {
    const { manifest, calls } = manifestFailing(0);
    const records = createRefusalRecords({ manifest, settings: { horizonMs: 1_000, answerWaitMs: 0 } });
    const { log } = logs();
    const stored = await records.record('u', opened, ['b1', 'b2'], noLock, log);
    assert.equal(stored?.state, 'failed');
    assert.deepEqual(calls, ['u /p b1,b2']);
    assert.equal(records.awaiting(), 0);
  });

  it('retries while Redis does not answer, keeping reads off the touched backends until it is recorded', async () => {
    const { manifest, calls } = manifestFailing(3);
    const counts: number[] = [];
    const records = createRefusalRecords({
      manifest,
      settings: { horizonMs: 10_000, answerWaitMs: 0, firstBackoffMs: 1, maxBackoffMs: 5 },
      onAwaitingChange: (count) => counts.push(count),
    });
    const { log, lines } = logs();
    assert.equal(
      await records.record('u', opened, ['b1', 'b2'], noLock, log),
      undefined,
      'not recorded by the answer',
    );
    assert.equal(records.awaiting(), 1);
    assert.deepEqual([...records.touched('u', '/p')], ['b1', 'b2']);
    assert.deepEqual([...records.touched('u', '/other')], []);
    await waitUntil('the record', () => records.awaiting() === 0);
    assert.equal(calls.length, 4, 'three refused attempts, then the record');
    assert.deepEqual(counts, [1, 0], 'the gauge rose and fell');
    assert.deepEqual([...records.touched('u', '/p')], []);
    assert.ok(lines.some((l) => l.message.startsWith('failed write intent recorded again')));
  });

  it('the answer waits for a record that lands within its wait', async () => {
    const { manifest } = manifestFailing(2);
    const records = createRefusalRecords({
      manifest,
      settings: { horizonMs: 10_000, answerWaitMs: 5_000, firstBackoffMs: 1 },
    });
    const stored = await records.record('u', opened, ['b1'], noLock, logs().log);
    assert.equal(stored?.fence, 9);
  });

  it('stops once the script declines (a newer change or an open intent governs the path)', async () => {
    const { manifest, calls } = manifestFailing(1, 'decline');
    const records = createRefusalRecords({
      manifest,
      settings: { horizonMs: 10_000, answerWaitMs: 5_000, firstBackoffMs: 1 },
    });
    assert.equal(await records.record('u', opened, ['b1'], noLock, logs().log), undefined);
    assert.equal(calls.length, 2);
    assert.equal(records.awaiting(), 0);
  });

  it('gives up after the horizon, logging it, and close() gives up at once', async () => {
    const { manifest } = manifestFailing(Number.POSITIVE_INFINITY);
    const records = createRefusalRecords({
      manifest,
      settings: { horizonMs: 30, answerWaitMs: 0, firstBackoffMs: 1, maxBackoffMs: 5 },
    });
    const { log, lines } = logs();
    await records.record('u', opened, ['b1'], noLock, log);
    await waitUntil('the horizon', () => records.awaiting() === 0);
    assert.ok(lines.some((l) => l.level === 'error' && l.message.startsWith('gave up recording')));

    const closing = createRefusalRecords({ manifest, settings: { horizonMs: 60_000, answerWaitMs: 0 } });
    const closed = logs();
    await closing.record('u', opened, ['b1'], noLock, closed.log);
    assert.equal(closing.awaiting(), 1);
    closing.close();
    await waitUntil('the shutdown', () => closing.awaiting() === 0);
    assert.ok(closed.lines.some((l) => l.level === 'error' && l.message.startsWith('gave up recording')));
  });

  it('records nothing for a write that touched no backend', async () => {
    const { manifest, calls } = manifestFailing(0);
    const records = createRefusalRecords({ manifest, settings: { horizonMs: 1_000, answerWaitMs: 0 } });
    assert.equal(await records.record('u', opened, [], noLock, logs().log), undefined);
    assert.deepEqual(calls, []);
  });

  it("holds the write's path lock until the retry ends, so the healer cannot resolve the intent before it", async () => {
    const { manifest, calls } = manifestFailing(3);
    const records = createRefusalRecords({
      manifest,
      settings: { horizonMs: 10_000, answerWaitMs: 0, firstBackoffMs: 1, maxBackoffMs: 5 },
    });
    const { holds, lock } = heldLock();
    await records.record('u', opened, ['b1'], lock, logs().log);
    assert.equal(holds.length, 1, 'the retry holds the lock');
    let settled = false;
    void holds[0]?.then(() => {
      settled = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(settled, false, 'still held while the record is awaited');
    await waitUntil('the hold to end', () => settled);
    assert.equal(calls.length, 4, 'it ended with the record');
    assert.equal(records.awaiting(), 0);

    const atOnce = heldLock();
    await createRefusalRecords({
      manifest: manifestFailing(0).manifest,
      settings: { horizonMs: 1_000, answerWaitMs: 0 },
    }).record('u', opened, ['b1'], atOnce.lock, logs().log);
    assert.equal(atOnce.holds.length, 0, 'a record stored at once holds nothing');
  });

  it('writes an awaited record down before the answer, and removes the note once it is settled', async () => {
    const { manifest } = manifestFailing(2);
    const { notes, journal } = memoryJournal();
    const records = createRefusalRecords({
      manifest,
      journal,
      settings: { horizonMs: 10_000, answerWaitMs: 0, firstBackoffMs: 1 },
    });
    await records.record('u', opened, ['b1'], noLock, logs().log);
    assert.deepEqual(
      [...notes.values()].map((n) => [n.charmId, n.opened.path, n.touched]),
      [['u', '/p', ['b1']]],
      'written down by the answer',
    );
    await waitUntil('the record', () => records.awaiting() === 0);
    await waitUntil('the note to go', () => notes.size === 0);

    const atOnce = memoryJournal();
    await createRefusalRecords({
      manifest: manifestFailing(0).manifest,
      journal: atOnce.journal,
      settings: { horizonMs: 1_000, answerWaitMs: 0 },
    }).record('u', opened, ['b1'], noLock, logs().log);
    assert.equal(atOnce.notes.size, 0, 'a record stored at once writes nothing down');
  });

  it('a stopped gateway keeps its note; the next one resumes it at start, keeping reads off the touched backends', async () => {
    const { notes, journal } = memoryJournal();
    const stopping = createRefusalRecords({
      manifest: manifestFailing(Number.POSITIVE_INFINITY).manifest,
      journal,
      settings: { horizonMs: 60_000, answerWaitMs: 0 },
    });
    const stopped = logs();
    await stopping.record('u', opened, ['b1', 'b2'], noLock, stopped.log);
    stopping.close();
    await waitUntil('the shutdown', () => stopping.awaiting() === 0);
    assert.equal(notes.size, 1, 'the note stays for the next gateway');
    assert.ok(
      stopped.lines.some((l) => l.message.startsWith('stopping with a failed write intent not recorded')),
    );

    const { manifest, calls } = manifestFailing(1);
    const next = createRefusalRecords({
      manifest,
      journal,
      settings: { horizonMs: 10_000, answerWaitMs: 0, firstBackoffMs: 1 },
    });
    const resumed = logs();
    assert.equal(await next.resume(resumed.log), 1);
    assert.deepEqual([...next.touched('u', '/p')], ['b1', 'b2'], 'reads keep off the touched backends');
    await waitUntil('the record', () => next.awaiting() === 0);
    await waitUntil('the note to go', () => notes.size === 0);
    assert.deepEqual(calls, ['u /p b1,b2', 'u /p b1,b2'], 'refused once, then recorded');
    assert.ok(resumed.lines.some((l) => l.message.startsWith('failed write intent recorded again')));
  });

  it('a journal that cannot be written is logged, and the refusal is still retried', async () => {
    const { manifest } = manifestFailing(1);
    const journal: RefusalJournal = {
      save: async () => {
        throw new Error('EROFS: read-only file system');
      },
      remove: async () => {},
      leftovers: async () => ({ refusals: [], unreadable: [] }),
    };
    const records = createRefusalRecords({
      manifest,
      journal,
      settings: { horizonMs: 10_000, answerWaitMs: 5_000, firstBackoffMs: 1 },
    });
    const { log, lines } = logs();
    assert.equal((await records.record('u', opened, ['b1'], noLock, log))?.fence, 9);
    assert.ok(
      lines.some((l) => l.level === 'error' && l.message.startsWith('could not write a refusal down')),
    );
  });
});
