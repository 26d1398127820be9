import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { BackupVersion } from './backup-store.ts';
import { historiesOf, prunable, versionAt } from './history.ts';

const at = (s: string) => new Date(`2026-01-01T${s}Z`);
const entry = (versionId: string, time: string, deleteMarker = false): BackupVersion => ({
  path: '/f',
  versionId,
  deleteMarker,
  isLatest: false,
  storedAt: at(time),
  size: deleteMarker ? 0 : 10,
});

// Newest first: written at 10:00, overwritten at 11:00, deleted at 12:00, written again at 13:00.
const history = [
  entry('v3', '13:00:00'),
  entry('d1', '12:00:00', true),
  entry('v2', '11:00:00'),
  entry('v1', '10:00:00'),
];

describe('a key as it was at a time', () => {
  it('is the newest version stored at or before the time', () => {
    assert.equal(versionAt(history, at('10:30:00'))?.versionId, 'v1');
    assert.equal(versionAt(history, at('11:00:00'))?.versionId, 'v2');
    assert.equal(versionAt(history, at('13:30:00'))?.versionId, 'v3');
  });

  it('is absent before its first version and while a delete marker is the newest', () => {
    assert.equal(versionAt(history, at('09:59:59')), undefined);
    assert.equal(versionAt(history, at('12:30:00')), undefined);
  });
});

describe('retention', () => {
  it('prunes noncurrent entries whose successor is older than the limit, never the current one', () => {
    assert.deepEqual(
      prunable(history, at('12:30:00')).map((e) => e.versionId),
      ['v2', 'v1'],
      'v2 became noncurrent at 12:00 (the delete), v1 at 11:00; d1 only at 13:00',
    );
    assert.deepEqual(
      prunable(history, at('23:00:00')).map((e) => e.versionId),
      ['d1', 'v2', 'v1'],
    );
    assert.deepEqual(prunable(history, at('10:30:00')), []);
    assert.deepEqual(
      prunable([entry('only', '01:00:00')], at('23:00:00')),
      [],
      'a lone current version stays',
    );
    assert.deepEqual(
      prunable([entry('gone', '01:00:00', true)], at('23:00:00')),
      [],
      'a current delete marker stays',
    );
  });
});

describe('histories', () => {
  it('groups consecutive entries per key', async () => {
    async function* stream() {
      yield { ...entry('a2', '02:00:00'), path: '/a' };
      yield { ...entry('a1', '01:00:00'), path: '/a' };
      yield { ...entry('b1', '01:00:00'), path: '/b' };
    }
    const out: { path: string; ids: string[] }[] = [];
    for await (const h of historiesOf(stream()))
      out.push({ path: h.path, ids: h.entries.map((e) => e.versionId) });
    assert.deepEqual(out, [
      { path: '/a', ids: ['a2', 'a1'] },
      { path: '/b', ids: ['b1'] },
    ]);
  });
});
