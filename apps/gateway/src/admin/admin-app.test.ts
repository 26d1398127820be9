import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { sameSecret } from './admin-app.ts';

describe('admin credentials', () => {
  it('tells right from wrong, whatever the lengths', () => {
    assert.equal(sameSecret('correct horse', 'correct horse'), true);
    for (const guess of ['', 'c', 'correct hors', 'correct horse ', 'correct horsf', 'correct horse\0'])
      assert.equal(sameSecret(guess, 'correct horse'), false, JSON.stringify(guess));
  });

  it('compares the same number of bytes for every guess, so the time taken does not reveal the length', (t) => {
    const compare = t.mock.method(crypto, 'timingSafeEqual');
    for (const guess of ['', 'x', 'correct horse', 'a much longer guess than the secret itself'])
      sameSecret(guess, 'correct horse');
    assert.equal(compare.mock.callCount(), 4, 'a constant-time comparison runs even when the lengths differ');
    for (const call of compare.mock.calls) {
      const [a, b] = call.arguments as unknown as [Buffer, Buffer];
      assert.deepEqual([a.length, b.length], [32, 32]);
    }
  });
});
