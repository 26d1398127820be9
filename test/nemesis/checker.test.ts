import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ABSENT, checkHistory, type FinalState, type Operation, UNANSWERED } from './checker.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

const write = (
  sha256: string,
  startMs: number,
  endMs: number,
  outcome: Operation['outcome'] = 'ok',
): Operation => ({
  op: 'write',
  path: '/f',
  sha256,
  outcome,
  startMs,
  endMs,
});
const remove = (
  startMs: number,
  endMs: number,
  path = '/f',
  outcome: Operation['outcome'] = 'ok',
): Operation => ({
  op: 'delete',
  path,
  outcome,
  startMs,
  endMs,
});
const read = (seen: string, startMs: number, endMs: number): Operation => ({
  op: 'read',
  path: '/f',
  seen,
  outcome: 'ok',
  startMs,
  endMs,
});
const final = (served: string, stores: Record<string, string> = {}): FinalState => ({
  served: new Map([['/f', served]]),
  servedRaw: new Map([['/f', served]]),
  stores: new Map(
    Object.entries(stores).map(([name, sha]) => [name, new Map(sha === ABSENT ? [] : [['/f', sha]])]),
  ),
});
const kinds = (history: Operation[], state: FinalState) => checkHistory(history, state).map((v) => v.kind);

describe('the nemesis checker', () => {
  it('accepts a history whose end state is the last acknowledged write, everywhere', () => {
    const history = [write(A, 0, 10), write(B, 20, 30), read(B, 40, 41)];
    assert.deepEqual(kinds(history, final(B, { b1: B, b2: B, s3: B })), []);
  });

  it('accepts either of two overlapping acknowledged writes, and an unknown outcome either way', () => {
    const history = [write(A, 0, 30), write(B, 10, 20), write(C, 40, 50, 'unknown')];
    assert.deepEqual(kinds(history, final(A)), []);
    assert.deepEqual(kinds(history, final(B)), []);
    assert.deepEqual(kinds(history, final(C)), []);
  });

  it('finds an acknowledged write that was lost', () => {
    const history = [write(A, 0, 10), write(B, 20, 30)];
    assert.deepEqual(kinds(history, final(A)), ['acknowledged-write-lost']);
    assert.deepEqual(kinds(history, final(ABSENT)), ['acknowledged-write-lost']);
  });

  it('calls an older write served over a later one a lost write, even when a delete came before both', () => {
    const history = [remove(0, 5), write(A, 10, 20), write(B, 30, 40)];
    assert.deepEqual(kinds(history, final(A)), ['acknowledged-write-lost']);
  });

  it('lets a read after a lost Redis tail see the path as it was before a change acknowledged in that tail, until healed', () => {
    const tail = { copiedMs: 100, restoredMs: 110 };
    const judged = (history: Operation[], served: string) =>
      checkHistory(history, final(served), [tail]).map((v) => v.kind);
    // B acknowledged after the copy: a read after the restore may see A (the manifest went back), and only then.
    const lost = [write(A, 0, 10), write(B, 102, 104)];
    assert.deepEqual(judged([...lost, read(A, 120, 121)], B), []);
    assert.deepEqual(kinds([...lost, read(A, 120, 121)], final(B)), ['stale-read'], 'no tail, no excuse');
    assert.deepEqual(judged([...lost, read(A, 105, 106)], B), ['stale-read'], 'before the restore');
    // Once healed, the acknowledged write must be back, and a delete acknowledged in the tail must hold.
    assert.deepEqual(judged([...lost, read(A, 120, 121)], A), ['acknowledged-write-lost']);
    assert.deepEqual(judged([write(A, 0, 10), remove(102, 104), read(A, 120, 121)], ABSENT), []);
    assert.deepEqual(judged([write(A, 0, 10), remove(102, 104)], A), ['delete-undone']);
    // A change acknowledged before the copy, or after the restore, excuses nothing.
    assert.deepEqual(judged([write(A, 0, 10), write(B, 20, 30), read(A, 120, 121)], B), ['stale-read']);
    assert.deepEqual(judged([write(A, 0, 10), write(B, 111, 115), read(A, 120, 121)], B), ['stale-read']);
  });

  it('finds a delete that was undone, also by a recursive delete of a directory above', () => {
    assert.deepEqual(kinds([write(A, 0, 10), remove(20, 30)], final(A)), ['delete-undone']);
    assert.deepEqual(kinds([write(A, 0, 10), remove(20, 30, '/')], final(A)), ['delete-undone']);
  });

  it('finds a refused write that is served, read or held as current', () => {
    const history = [write(A, 0, 10), write(B, 20, 30, 'refused')];
    assert.deepEqual(kinds(history, final(B)), ['unacknowledged-served']);
    assert.deepEqual(kinds([...history, read(B, 40, 41)], final(A)), ['unacknowledged-served']);
  });

  it('finds a read that saw a version an acknowledged write had already replaced', () => {
    const history = [write(A, 0, 10), write(B, 20, 30), read(A, 40, 41)];
    assert.deepEqual(kinds(history, final(B)), ['stale-read']);
    // Concurrent with the overwrite, the old version is fine.
    assert.deepEqual(kinds([write(A, 0, 10), write(B, 20, 30), read(A, 25, 26)], final(B)), []);
  });

  it('finds an owner or the bucket that did not converge', () => {
    const history = [write(A, 0, 10), remove(20, 30)];
    assert.deepEqual(
      checkHistory(history, final(ABSENT, { b1: ABSENT, s3: A })).map((v) => [
        v.kind,
        v.detail.split(' ')[0],
      ]),
      [['not-converged', 's3']],
    );
  });

  it("keeps the CLI's tree apart: its write of charm:/f neither replaces nor is replaced by a raw write of /f", () => {
    const cli = (op: Operation): Operation => ({ ...op, path: 'charm:/f' });
    const history = [write(A, 0, 10), cli(write(B, 20, 30)), read(A, 40, 41), cli(read(B, 42, 43))];
    const state: FinalState = {
      served: new Map([
        ['/f', A],
        ['charm:/f', B],
      ]),
      servedRaw: new Map([['/f', A]]),
      stores: new Map(),
    };
    assert.deepEqual(kinds(history, state), []);
    // The CLI reading the raw write's bytes, or a lost CLI write, is caught on the CLI's path.
    assert.deepEqual(kinds([...history, cli(read(A, 50, 51))], state), ['stale-read']);
    assert.deepEqual(
      kinds(history, {
        ...state,
        served: new Map([
          ['/f', A],
          ['charm:/f', ABSENT],
        ]),
      }),
      ['acknowledged-write-lost'],
    );
  });

  it('finds a stored copy that no client path names and the gateway does not serve (the encrypted tree)', () => {
    const state: FinalState = {
      served: new Map([['/f', A]]),
      servedRaw: new Map([
        ['/f', A],
        ['/e1', C],
      ]),
      stores: new Map([
        [
          'b1',
          new Map([
            ['/f', A],
            ['/e1', C],
            ['/e2', B],
          ]),
        ],
        ['s3', new Map([['/f', A]])],
      ]),
    };
    assert.deepEqual(
      checkHistory([write(A, 0, 10)], state).map((v) => `${v.path} ${v.detail.split(' ')[0]}`),
      ['/e1 s3', '/e2 b1'],
    );
  });

  it('finds a former owner that still holds a file after a ring change and --prune', () => {
    const history = [write(A, 0, 10), remove(20, 30, '/f'), write(B, 40, 50)];
    const pruned = { ...final(B, { b1: B, s3: B }), formerOwners: new Map([['b4', new Map()]]) };
    assert.deepEqual(kinds(history, pruned), []);
    const leftover = { ...pruned, formerOwners: new Map([['b4', new Map([['/f', A]])]]) };
    assert.deepEqual(
      checkHistory(history, leftover).map((v) => [v.kind, v.detail.split(' ')[0]]),
      [['not-converged', 'b4']],
    );
  });

  it('finds a path that still has no answer once healed', () => {
    const history = [write(A, 0, 10)];
    assert.deepEqual(kinds(history, final(UNANSWERED, { b1: A })), ['unreadable', 'not-converged']);
  });
});
