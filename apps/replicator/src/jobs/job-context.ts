import type { BackendClient, ServerKey } from '@cring/charm';
import type { Manifest } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';
import type { ModTimeSender } from './mod-time.ts';

/** What a job processor needs; tests pass small fakes. */
export interface JobContext {
  manifest: Manifest;
  /** A client for every configured backend (job targets and sources). */
  clientFor(name: string): BackendClient | undefined;
  /** Replicas' modification times, through the agents beside the backends (when agents are configured). */
  modTimes?: ModTimeSender;
  /** Mints short-lived tokens for account-state calls (encrypt keys, seq). */
  auth: { key: ServerKey; issuer: string };
  logger: Logger;
}

export type JobOutcome = { outcome: 'applied'; detail?: string } | { outcome: 'dropped'; reason: string };

/** Path locks taken by workers: the same locks the gateway takes for writes, so a copy never races a write. */
export const LOCK_WAIT_MS = 120_000;

// Shared with `cring restore`, which writes restored files under the same locks.
export { fencedBody } from '@cring/manifest';
