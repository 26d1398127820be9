import { Redis } from 'ioredis';
import { waitFor } from './wait.ts';

/** Waits until every sentinel knows both replicas: before that a dead primary could not be replaced. */
export async function waitForSentinelsToKnowReplicas(set: {
  sentinels: { port: number }[];
  masterName: string;
}): Promise<void> {
  for (const s of set.sentinels) {
    const sentinel = new Redis(s.port, '127.0.0.1', { maxRetriesPerRequest: 1 });
    try {
      await waitFor(
        `sentinel ${s.port} to learn of both replicas`,
        async () => ((await sentinel.call('SENTINEL', 'replicas', set.masterName)) as unknown[]).length >= 2,
        30_000,
        200,
      );
    } finally {
      sentinel.disconnect();
    }
  }
}
