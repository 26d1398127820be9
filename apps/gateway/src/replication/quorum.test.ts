import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import { runQuorum } from './quorum.ts';

const backends: Backend[] = ['a', 'b', 'c', 'd'].map((name) => ({
  name,
  httpUrl: `http://${name}`,
  sshHost: name,
  sshPort: 1,
}));

describe('runQuorum', () => {
  it('uses the first W candidates when they succeed, in parallel', async () => {
    const started: string[] = [];
    const outcome = await runQuorum(backends, 2, async (b) => {
      started.push(b.name);
      await new Promise((r) => setTimeout(r, 10));
      return b.name;
    });
    assert.deepEqual(started, ['a', 'b']);
    assert.deepEqual(outcome.successes.map((s) => s.backend.name).sort(), ['a', 'b']);
  });

  it('moves to the next candidate when one fails (sloppy quorum)', async () => {
    const outcome = await runQuorum(backends, 2, async (b) => {
      if (b.name === 'a' || b.name === 'c') throw new Error(`${b.name} down`);
      return b.name;
    });
    assert.deepEqual(outcome.successes.map((s) => s.backend.name).sort(), ['b', 'd']);
    assert.deepEqual(outcome.failures.map((f) => f.reason).sort(), ['a down', 'c down']);
  });

  it('reports fewer successes than needed when candidates run out', async () => {
    const outcome = await runQuorum(backends, 2, async (b) => {
      if (b.name !== 'c') throw new Error('down');
      return b.name;
    });
    assert.equal(outcome.successes.length, 1);
    assert.equal(outcome.failures.length, 3);
  });
});
