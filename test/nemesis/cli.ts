/**
 * `npm run nemesis [-- --seed N --duration-ms MS --fault-ms MS --runs K --faults kind,kind]`: nemesis runs, each on a fresh local
 * cluster, printing each run's seed, figures and violations. The defaults are the bounded run (45 s of faults of
 * 4 s, about 3 minutes in all); `--fault-ms 35000` pauses past the lock TTL; `--faults` picks only from the kinds
 * named (to hammer one). Exit 1 when any run found a violation.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { repoRoot, startCluster } from '@cring/local-cluster';
import { newUser } from '../harness/clients.ts';
import { BOUNDED_RUN, FAULT_KINDS, type FaultKind, runNemesis } from './run.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string' },
    'duration-ms': { type: 'string', default: String(BOUNDED_RUN.durationMs) },
    'fault-ms': { type: 'string', default: String(BOUNDED_RUN.faultMs) },
    runs: { type: 'string', default: '1' },
    clients: { type: 'string', default: String(BOUNDED_RUN.clients) },
    faults: { type: 'string' },
  },
});

const faultKinds = values.faults?.split(',').map((kind) => kind.trim()) as FaultKind[] | undefined;
const unknownKinds = faultKinds?.filter((kind) => !FAULT_KINDS.includes(kind)) ?? [];
if (unknownKinds.length > 0) {
  console.error(`--faults: unknown kind(s) ${unknownKinds.join(', ')}; known: ${FAULT_KINDS.join(', ')}`);
  process.exit(2);
}

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
      faultKinds,
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
