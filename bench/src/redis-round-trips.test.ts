import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type MonitoredCommand, roundTrips } from './redis-round-trips.ts';

const at = (atMs: number, client: string, command = 'x'): MonitoredCommand => ({ atMs, client, command });

describe('round trips from MONITOR', () => {
  it('counts a pipeline once, even when a script in it runs long, and each awaited command once', () => {
    const commands = [
      at(0, 'gw'), // lock + intent script
      at(0.01, 'lua'),
      at(2, 'gw'), // commit, after the POSTs
      at(3, 'gw'), // the pipeline: a job's script …
      at(3.2, 'lua'),
      at(3.5, 'lua'),
      at(3.52, 'gw'), // … the next command of the same pipeline
      at(3.53, 'gw'),
    ];
    assert.equal(roundTrips(commands), 3);
  });

  it('counts clients apart', () => {
    assert.equal(roundTrips([at(0, 'a'), at(0.01, 'b'), at(0.02, 'a')]), 2);
  });
});
