import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { rfc3339 } from './fallback-ssh.ts';

describe('rfc3339', () => {
  it("turns every created_at form charm's SQLite holds into RFC 3339", () => {
    assert.equal(rfc3339('2026-11-25 08:51:01'), '2026-11-25T08:51:01Z');
    // What the server stores for a created_at the gateway stamped: Go's time.String().
    assert.equal(rfc3339('2026-11-25 09:12:17.895 +0000 UTC'), '2026-11-25T09:12:17.895+00:00');
    assert.equal(rfc3339('2026-11-25T09:12:17.895-05:00'), '2026-11-25T09:12:17.895-05:00');
    assert.equal(rfc3339(null), null);
  });
});
