import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FETCH_BAD_PORTS, freePorts, HIGH, LOW } from './free-port.ts';

/** Whether fetch() refuses the port itself (before any connection), as it does the Fetch standard's bad ports. */
async function fetchRefuses(port: number): Promise<boolean> {
  try {
    await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2_000) });
    return false;
  } catch (err) {
    const cause = (err as { cause?: { message?: string } }).cause;
    return (cause?.message ?? (err as Error).message) === 'bad port';
  }
}

describe('free ports', () => {
  it('the list of ports fetch() refuses is whole for the range the picker uses', async () => {
    const refused: number[] = [];
    for (let start = LOW; start < HIGH; start += 500) {
      const ports = Array.from({ length: Math.min(500, HIGH - start) }, (_, i) => start + i);
      const answers = await Promise.all(ports.map(fetchRefuses));
      refused.push(...ports.filter((_, i) => answers[i]));
    }
    assert.deepEqual(
      refused,
      [...FETCH_BAD_PORTS].sort((a, b) => a - b),
    );
  });

  it('never hands out a port fetch() refuses', async () => {
    const ports = await freePorts(50);
    assert.equal(new Set(ports).size, 50, 'distinct');
    for (const port of ports) {
      assert.ok(port >= LOW && port < HIGH, String(port));
      assert.ok(!FETCH_BAD_PORTS.has(port), String(port));
    }
  });
});
