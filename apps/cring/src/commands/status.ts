import { accountKeys } from '@cring/accounts';
import type { DiskSpace } from '@cring/agent-protocol';
import { type Backend, probeHttp, probeSsh } from '@cring/charm';
import { connectRedis, describeRedis } from '@cring/config';
import {
  ACCOUNTS_QUEUE,
  backendQueueName,
  HEALER_QUEUE,
  healerKeys,
  QUEUE_PREFIX,
  S3_QUEUE,
} from '@cring/jobs';
import { manifestKeys } from '@cring/manifest';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { agentOf, type CringConfig, UsageError } from '../config.ts';

const PROBE_TIMEOUT_MS = 3000;

export interface ClusterStatus {
  backends: {
    name: string;
    httpUrl: string;
    http: string;
    ssh: string;
    /** Its data volume as its agent reports it; null without an agent, or an error saying why not. */
    disk: DiskSpace | { error: string } | null;
  }[];
  accountPrimary: string | null;
  queues: { queue: string; waiting: number; active: number; delayed: number; failed: number }[];
  pendingRepairs: Record<string, number>;
  lastScan: unknown;
}

async function probe(check: () => Promise<void>): Promise<string> {
  try {
    await check();
    return 'up';
  } catch (err) {
    // The errno (ECONNREFUSED, ETIMEDOUT…) says enough in a table; otherwise the start of the message.
    const message = (err as Error).message;
    return `down (${/\bE[A-Z]{3,}\b/.exec(message)?.[0] ?? message.slice(0, 40)})`;
  }
}

async function diskOf(config: CringConfig, name: string): Promise<DiskSpace | { error: string } | null> {
  if (!config.agents.has(name)) return null;
  try {
    return await agentOf(config, name).diskSpace({ timeoutMs: PROBE_TIMEOUT_MS });
  } catch (err) {
    return { error: (err as Error).message };
  }
}

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const bytesText = (bytes: number) =>
  bytes >= GiB ? `${(bytes / GiB).toFixed(1)} GiB` : `${(bytes / MiB).toFixed(1)} MiB`;

/** "12.3 GiB (45.6%)", with the verdict when under the reserve; what a missing agent means otherwise. */
export function formatDisk(disk: ClusterStatus['backends'][number]['disk']): string {
  if (disk === null) return 'unknown (no agent in CRING_AGENTS)';
  if ('error' in disk)
    return `unknown (agent: ${/\bE[A-Z]{3,}\b/.exec(disk.error)?.[0] ?? disk.error.slice(0, 40)})`;
  const free = `${bytesText(disk.freeBytes)} (${disk.freePercent.toFixed(1)}%)`;
  return disk.underReserve
    ? `${free} FULL: under the ${bytesText(disk.reserveBytes)} reserve, no new writes or repairs`
    : free;
}

/** Counts pending markers (changes a backend has not applied yet) over every user, by target. */
async function pendingByTarget(redis: Redis): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', manifestKeys.pending('*'), 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      for (const field of await redis.hkeys(key)) {
        const target = field.slice(0, field.indexOf('|'));
        counts[target] = (counts[target] ?? 0) + 1;
      }
    }
  } while (cursor !== '0');
  return counts;
}

/** `cring status`: what an operator checks first. Probes every backend itself, reads queues and repairs from Redis. */
export async function collectStatus(config: CringConfig): Promise<ClusterStatus> {
  if (!config.redis) throw new UsageError('status needs REDIS_URL (or REDIS_SENTINELS)');
  const backends = await Promise.all(
    config.backends.map(async (b: Backend) => ({
      name: b.name,
      httpUrl: b.httpUrl,
      http: await probe(() => probeHttp(b, PROBE_TIMEOUT_MS)),
      ssh: await probe(() => probeSsh(b, PROBE_TIMEOUT_MS)),
      disk: await diskOf(config, b.name),
    })),
  );
  const settings = config.redis;
  const redis = connectRedis(settings, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect().catch((err: Error) => {
      throw new Error(
        `${describeRedis(settings)} is unreachable (${err.message}): check REDIS_URL or REDIS_SENTINELS and that Redis runs`,
      );
    });
    const names = [
      ...config.backends.map((b) => backendQueueName(b.name)),
      S3_QUEUE,
      ACCOUNTS_QUEUE,
      HEALER_QUEUE,
    ];
    const queues = await Promise.all(
      names.map(async (name) => {
        const queue = new Queue(name, { connection: redis, prefix: QUEUE_PREFIX });
        const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'failed');
        await queue.close();
        return {
          queue: name,
          waiting: counts.waiting ?? 0,
          active: counts.active ?? 0,
          delayed: counts.delayed ?? 0,
          failed: counts.failed ?? 0,
        };
      }),
    );
    const lastScanJson = await redis.get(healerKeys.lastResult());
    return {
      backends,
      // The gateways' lease is the account primary; without one yet, the one they would pick.
      accountPrimary:
        (await redis.get(accountKeys.primary())) ?? backends.find((b) => b.ssh === 'up')?.name ?? null,
      queues,
      pendingRepairs: await pendingByTarget(redis),
      lastScan: lastScanJson ? JSON.parse(lastScanJson) : null,
    };
  } finally {
    redis.disconnect();
  }
}

function table(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '  (none)';
  const columns = Object.keys(rows[0] as object);
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? '').length)));
  const line = (values: string[]) =>
    `  ${values.map((v, i) => v.padEnd(widths[i] as number)).join('  ')}`.trimEnd();
  return [
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(columns.map((c) => String(r[c] ?? '')))),
  ].join('\n');
}

export function formatStatus(status: ClusterStatus): string {
  const scan = status.lastScan as {
    finishedAt: string;
    healthy: boolean;
    scanSeconds: number;
    stats: { users: number; files: number; missing: number; sizeMismatched: number; unrepairable: number };
  } | null;
  return [
    'backends',
    table(
      status.backends.map((b) => ({
        backend: b.name,
        http: b.http,
        ssh: b.ssh,
        url: b.httpUrl,
        'free space': formatDisk(b.disk),
      })),
    ),
    '',
    `account primary: ${status.accountPrimary ?? 'none (no backend answers SSH)'}`,
    '',
    'queues',
    table(status.queues),
    '',
    'pending repairs (changes not yet applied, by target)',
    table(Object.entries(status.pendingRepairs).map(([target, count]) => ({ target, pending: count }))),
    '',
    scan
      ? `last scan: ${scan.finishedAt}, ${scan.healthy ? 'healthy' : 'NOT healthy'} (${scan.stats.users} users, ${scan.stats.files} files, ${scan.stats.missing} missing, ${scan.stats.sizeMismatched} size-mismatched, ${scan.stats.unrepairable} unrepairable, ${scan.scanSeconds.toFixed(1)} s)`
      : 'last scan: never (run `healer --scan`, or start the healer worker)',
  ].join('\n');
}
