import { createAgentClient } from '@cring/agent-protocol';
import { createBackupStore } from '@cring/backup-store';
import { type BackendClient, createBackendClient, loadServerKey } from '@cring/charm';
import { createJobQueues } from '@cring/jobs';
import { createManifest } from '@cring/manifest';
import type { Redis } from 'ioredis';
import type { HealerConfig } from './config.ts';
import { createJobStates } from './scan/job-states.ts';
import type { ScanDeps } from './scan/scan.ts';

/** What a scan needs, built from the config (the CLI and the worker share it); close() is safe to call twice. */
export function openScanServices(config: HealerConfig, redis: Redis) {
  const key = loadServerKey(config.serverKeyFile);
  const manifest = createManifest(redis);
  const store = createBackupStore(config.s3);
  const backendNames = config.backends.map((backend) => backend.name);
  const queues = createJobQueues({ connection: redis, manifest, backends: backendNames });
  const jobStates = createJobStates(redis);
  const clients = new Map<string, BackendClient>(
    config.backends.map((backend) => [
      backend.name,
      createBackendClient({ backend, key, issuer: config.issuer, timeoutMs: config.backendTimeoutMs }),
    ]),
  );
  const deps: ScanDeps = {
    redis,
    manifest,
    store,
    queues,
    jobStates,
    clients,
    backendNames,
    accountRows: config.agents.map((agent) =>
      createAgentClient({ backend: agent.name, url: agent.url, key, issuer: config.issuer }),
    ),
    settings: {
      replicationFactor: config.replicationFactor,
      maxRequestsPerSecond: config.maxRequestsPerSecond,
      concurrency: config.concurrency,
      userConcurrency: config.userConcurrency,
      tombstoneRetentionMs: config.tombstoneRetentionMs,
      pendingGraceMs: config.pendingGraceMs,
      lostWriteGraceMs: config.lostWriteGraceMs,
    },
  };
  let closed: Promise<void> | undefined;
  return {
    deps,
    close(): Promise<void> {
      closed ??= (async () => {
        await Promise.allSettled([queues.close(), jobStates.close()]);
        for (const client of clients.values()) client.close();
        store.close();
      })();
      return closed;
    },
  };
}
