import type { Readable } from 'node:stream';
import type { AgentClient } from '@cring/agent-protocol';
import type { BackendClient, ServerKey } from '@cring/charm';
import type { Manifest, PathLock } from '@cring/manifest';
import type { Logger } from '@cring/service-runtime';

/** What a job processor needs; tests pass small fakes. */
export interface JobContext {
  manifest: Manifest;
  /** A client for every configured backend (job targets and sources). */
  clientFor(name: string): BackendClient | undefined;
  /** The agent beside a backend, when agents are configured (replicas' modification times). */
  agentFor?(name: string): AgentClient | undefined;
  /** Mints short-lived tokens for account-state calls (encrypt keys, seq). */
  auth: { key: ServerKey; issuer: string };
  logger: Logger;
}

export type JobOutcome = { outcome: 'applied'; detail?: string } | { outcome: 'dropped'; reason: string };

/** Path locks taken by workers: the same locks the gateway takes for writes, so a copy never races a write. */
export const LOCK_WAIT_MS = 120_000;

/**
 * Confirms the job still holds its path lock right before it writes to a backend, and cuts the write's body if the
 * lock is lost meanwhile (the backend then keeps its old file: an incomplete form is never written). A worker
 * frozen past the TTL thus never lands old bytes over a newer writer's.
 */
export async function fencedBody(lock: PathLock, body: Readable): Promise<Readable> {
  try {
    await lock.assertHeld();
  } catch (err) {
    body.destroy();
    throw err;
  }
  const cut = () => body.destroy(lock.signal.reason as Error);
  lock.signal.addEventListener('abort', cut, { once: true });
  body.once('close', () => lock.signal.removeEventListener('abort', cut));
  return body;
}
