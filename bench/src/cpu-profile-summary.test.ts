import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CpuProfile, summarizeCpuProfile } from './cpu-profile-summary.ts';

const frame = (functionName: string, url = '') => ({ functionName, url, lineNumber: 0 });

// root → idle; root → update (hash.js) → native digest; root → socketOnData (_http_client) → native execute
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)'), children: [2, 3, 5] },
    { id: 2, callFrame: frame('(idle)') },
    { id: 3, callFrame: frame('update', 'node:internal/crypto/hash'), children: [4] },
    { id: 4, callFrame: frame('digestNative') },
    { id: 5, callFrame: frame('socketOnData', 'node:_http_client'), children: [6] },
    { id: 6, callFrame: frame('execute') },
  ],
  startTime: 1_000,
  endTime: 1_000 + 700,
  samples: [2, 2, 4, 3, 6, 6, 2],
  timeDeltas: [0, 100, 100, 100, 100, 100, 100],
};

describe('summarizeCpuProfile', () => {
  it('gives native frames their caller’s category and counts self time per category and function', () => {
    const summary = summarizeCpuProfile(profile);
    assert.equal(summary.totalMs, 0.6);
    const byName = Object.fromEntries(summary.categories.map((c) => [c.name, c.ms]));
    assert.equal(byName['idle (waiting for sockets, disk, timers)'], 0.2);
    assert.equal(byName.sha256, 0.2);
    assert.equal(byName['HTTP + streams (node core)'], 0.2);
    assert.equal(summary.topFunctions[0]?.ms, 0.2);
  });

  it('keeps only the samples inside the window', () => {
    const summary = summarizeCpuProfile(profile, { window: { fromUs: 1_250, toUs: 1_450 } });
    assert.deepEqual(
      summary.categories.map((c) => c.name),
      ['sha256', 'HTTP + streams (node core)'],
    );
  });
});
