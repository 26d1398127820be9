// Lookups per second: the package's own getNode (which counts the whole ring on every lookup) against the
// wrapper's preferenceList. Run with `npm run bench -w @cring/ring`.
import ConsistentHashing from 'consistent-hashing';
import { createRing, DEFAULT_VIRTUAL_NODES } from './ring.ts';

const backends = Array.from({ length: 5 }, (_, i) => `backend-${i + 1}`);
const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

function lookupsPerSecond(lookup: (key: string) => unknown): number {
  const started = process.hrtime.bigint();
  for (const key of keys) lookup(key);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return Math.round(keys.length / seconds);
}

const raw = new ConsistentHashing(backends, { replicas: DEFAULT_VIRTUAL_NODES });
const ring = createRing(backends);
lookupsPerSecond((key) => raw.getNode(key)); // warm-up
lookupsPerSecond((key) => ring.preferenceList(key, 3));
console.table({
  'package getNode (first owner)': { lookupsPerSecond: lookupsPerSecond((key) => raw.getNode(key)) },
  'ring.preferenceList(key, 1)': { lookupsPerSecond: lookupsPerSecond((key) => ring.preferenceList(key, 1)) },
  'ring.preferenceList(key, 3)': { lookupsPerSecond: lookupsPerSecond((key) => ring.preferenceList(key, 3)) },
});
