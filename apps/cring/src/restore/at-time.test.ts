import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRestoreTime } from './at-time.ts';

const now = new Date('2026-12-01T12:00:00.000Z');

describe('--at', () => {
  it('takes ISO-8601 times with a zone and relative times', () => {
    assert.equal(parseRestoreTime('2026-12-01T10:30:00Z', now).toISOString(), '2026-12-01T10:30:00.000Z');
    assert.equal(
      parseRestoreTime('2026-12-01T11:30:00.250+01:00', now).toISOString(),
      '2026-12-01T10:30:00.250Z',
    );
    assert.equal(parseRestoreTime('-2h', now).toISOString(), '2026-12-01T10:00:00.000Z');
    assert.equal(parseRestoreTime('-90s', now).toISOString(), '2026-12-01T11:58:30.000Z');
    assert.equal(parseRestoreTime('-3d', now).toISOString(), '2026-11-28T12:00:00.000Z');
  });

  it('refuses times without a zone, in the future, malformed, or missing', () => {
    for (const bad of ['2026-12-01T10:30:00', '2026-12-01', 'yesterday', '-2w', '2026-13-01T10:00:00Z', '']) {
      assert.throws(() => parseRestoreTime(bad, now), /--at|needs --at/, bad);
    }
    assert.throws(() => parseRestoreTime('2026-12-01T12:00:01Z', now), /in the future/);
    assert.throws(() => parseRestoreTime(undefined, now), /restore needs --at/);
  });
});
