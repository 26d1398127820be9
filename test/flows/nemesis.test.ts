import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { BOUNDED_RUN, runNemesis } from '../nemesis/run.ts';

/**
 * The bounded nemesis run of `npm test`: a new seed every time (printed first, so a failure replays with
 * `npm run nemesis -- --seed N`), 45 s of workload under faults of 4 s, then heal, healer scans and the checker.
 * The longer runs (`--fault-ms 35000` pauses past the lock TTL, `--runs K`) are `npm run nemesis`.
 */
describe('nemesis (bounded)', () => {
  it('a seeded run of faults leaves no violation of the data-safety invariants', async (t) => {
    const seed = randomInt(2 ** 31);
    t.diagnostic(`nemesis seed ${seed} (replay: npm run nemesis -- --seed ${seed})`);
    console.log(`nemesis seed ${seed}`);
    const cluster = await useCluster(t, { logLevel: 'info' });
    const user = await newUser(cluster, `nemesis-${seed}`);
    const result = await runNemesis(cluster, user, {
      seed,
      ...BOUNDED_RUN,
      log: (line) => t.diagnostic(line),
    });
    t.diagnostic(JSON.stringify({ summary: result.summary, faults: result.faults }));
    assert.ok(result.summary.acknowledged > 0, 'the workload had acknowledged operations to check');
    assert.deepEqual(
      result.violations,
      [],
      `seed ${seed}: ${result.violations.length} violation(s); replay with npm run nemesis -- --seed ${seed}`,
    );
  });
});
