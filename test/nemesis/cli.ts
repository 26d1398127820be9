/**
 * `npm run nemesis [-- --seed N --duration-ms MS --fault-ms MS --runs K]`: nemesis runs, each on a fresh local
 * cluster, printing each run's seed, figures and violations. The defaults are the bounded run (45 s of faults of
 * 4 s, about 3 minutes in all); `--fault-ms 35000` pauses past the lock TTL. Exit 1 when any run found a violation.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startCluster } from '@cring/local-cluster';
import { newUser } from '../harness/clients.ts';
import { BOUNDED_RUN, runNemesis } from './run.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    'duration-ms': { type: 'string', default: String(BOUNDED_RUN.durationMs) },
    'fault-ms': { type: 'string', default: String(BOUNDED_RUN.faultMs) },
    runs: { type: 'string', default: '1' },
    clients: { type: 'string', default: String(BOUNDED_RUN.clients) },
  },
});

let failed = false;
for (let run = 0; run < Number(values.runs); run++) {
  const seed = values.seed && run === 0 ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
  const runDir = join(repoRoot, '.cring', 'nemesis', `${seed}-${randomBytes(3).toString('hex')}`);
  const cluster = await startCluster({ runDir, logLevel: 'info' });
  try {
    const user = await newUser(cluster, `nemesis-${seed}`);
    const result = await runNemesis(cluster, user, {
      seed,
      durationMs: Number(values['duration-ms']),
      faultMs: Number(values['fault-ms']),
      clients: Number(values.clients),
      log: (line) => console.log(line),
    });
    console.log(JSON.stringify(result, null, 2));
    if (result.violations.length > 0) {
      failed = true;
      console.log(`violations with seed ${seed}; logs kept in ${runDir}`);
    }
  } finally {
    await cluster.stop();
  }
}
process.exit(failed ? 1 : 0);
