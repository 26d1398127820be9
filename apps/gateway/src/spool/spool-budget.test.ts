import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SpoolBudget } from './spool-budget.ts';

describe('spool budget', () => {
  it('admits uploads within the budget at once', async () => {
    const budget = new SpoolBudget({ totalBytes: 100, waitMs: 10_000 });
    await budget.reserve(60);
    await budget.reserve(40);
    assert.equal(budget.used, 100);
    budget.release(100);
    assert.equal(budget.used, 0);
  });

  it('lets an upload past the budget wait until another finishes, first come first served', async () => {
    const budget = new SpoolBudget({ totalBytes: 100, waitMs: 10_000 });
    await budget.reserve(90);
    const order: string[] = [];
    const first = budget.reserve(50).then(() => order.push('first'));
    const second = budget.reserve(5).then(() => order.push('second'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(order, [], 'both wait: the small one does not overtake the first');
    budget.release(90);
    await Promise.all([first, second]);
    assert.deepEqual(order, ['first', 'second']);
    assert.equal(budget.used, 55);
  });

  it('refuses with 503 and Retry-After when the budget stays spent for the wait', async () => {
    const budget = new SpoolBudget({ totalBytes: 100, waitMs: 50 });
    await budget.reserve(100);
    await assert.rejects(budget.reserve(1), {
      statusCode: 503,
      code: 'SPOOL_FULL',
      retryAfterSeconds: 1,
      limit: 'spool_budget',
      message: /spool budget.*nothing was changed/,
    });
    assert.equal(budget.used, 100, 'a refused upload holds nothing');
  });
});
