import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Manifest } from '@cring/manifest';

export interface DrainResult {
  drained: boolean;
  ms: number;
  /** Pending markers left when it gave up (0 when drained). */
  left: number;
}

/** Polls the user's pending-job markers until none is left (every owner and S3 applied every change). */
export async function waitForDrain(
  manifest: Manifest,
  charmId: string,
  options: { timeoutMs?: number; pollMs?: number } = {},
): Promise<DrainResult> {
  const timeoutMs = options.timeoutMs ?? 180_000;
  const started = performance.now();
  for (;;) {
    const left = (await manifest.pendingJobs(charmId)).length;
    const ms = performance.now() - started;
    if (left === 0) return { drained: true, ms, left };
    if (ms > timeoutMs) return { drained: false, ms, left };
    await sleep(options.pollMs ?? 100);
  }
}
