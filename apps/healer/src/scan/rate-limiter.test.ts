import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createRateLimiter, createTaskPool } from './rate-limiter.ts';

describe('createRateLimiter', () => {
  it('spaces takes 1/perSecond apart, without waiting for the first', async () => {
    let now = 1000;
    const slept: number[] = [];
    const limiter = createRateLimiter(200, {
      now: () => now,
      sleep: async (ms) => {
        slept.push(ms);
      },
    });
    await Promise.all([limiter.take(), limiter.take(), limiter.take()]);
    assert.deepEqual(slept, [5, 10]);
    now += 100; // idle time is not saved up as a burst
    slept.length = 0;
    await Promise.all([limiter.take(), limiter.take()]);
    assert.deepEqual(slept, [5]);
  });

  it('refuses a rate of zero', () => {
    assert.throws(() => createRateLimiter(0), RangeError);
  });
});

describe('createTaskPool', () => {
  it('never runs more than the limit at once, and runs everything', async () => {
    const pool = createTaskPool(3);
    let active = 0;
    let peak = 0;
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        pool.run(async () => {
          active++;
          peak = Math.max(peak, active);
          await new Promise((resolve) => setTimeout(resolve, 2));
          active--;
          return i;
        }),
      ),
    );
    assert.equal(peak, 3);
    assert.deepEqual(
      results,
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  it('frees the slot when a task fails', async () => {
    const pool = createTaskPool(1);
    await assert.rejects(
      pool.run(async () => Promise.reject(new Error('boom'))),
      /boom/,
    );
    assert.equal(await pool.run(async () => 'next'), 'next');
  });
});
