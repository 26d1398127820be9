/**
 * One nemesis run on a local cluster: a seeded workload of concurrent writes, overwrites, deletes (files and
 * directories) and reads, through raw HTTP and the stock charm CLI, recorded as a history; meanwhile seeded
 * faults (kill -9 and SIGSTOP of backends, the gateway and the replicator, Redis killed, S3 stopped, a backend
 * wiped). Then everything is healed, the healer runs, and the checker judges the history against what the
 * gateway, every owner and the bucket hold. The seed is printed: the same seed replays the same plan.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Cluster } from '@cring/local-cluster';
import type { CharmClient } from '../harness/charm-cli.ts';
import { runCli } from '../harness/cli.ts';
import { gatewayGauge } from '../harness/gateway-metrics.ts';
import { gatewayUrl, tokens } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';
import {
  ABSENT,
  checkHistory,
  type LostTail,
  type Operation,
  summarize,
  UNANSWERED,
  type Violation,
} from './checker.ts';
import { CLUSTER_FAULT_KINDS, type ClusterFaultKind, injectClusterFault, ownersOf } from './faults.ts';
import { type Channel, cliChannel, httpChannel } from './operations.ts';

export type FaultKind =
  | 'kill-backend'
  | 'pause-backend'
  | 'kill-gateway'
  | 'pause-gateway'
  | 'pause-replicator'
  | 'kill-redis'
  | 'stop-s3'
  | 'wipe-backend'
  | ClusterFaultKind;

export const FAULT_KINDS: readonly FaultKind[] = [
  'kill-backend',
  'pause-backend',
  'kill-gateway',
  'pause-gateway',
  'pause-replicator',
  'kill-redis',
  'stop-s3',
  'wipe-backend',
  ...CLUSTER_FAULT_KINDS,
];

export interface NemesisOptions {
  seed: number;
  /** How long the workload and the faults run. */
  durationMs: number;
  /** Concurrent workload clients. */
  clients: number;
  /** How long a fault lasts (a pause past the lock TTL needs more than 30 s). */
  faultMs: number;
  /** The fault kinds to pick from (default: all of them). */
  faultKinds?: readonly FaultKind[];
  log?: (line: string) => void;
}

/** The bounded run (`npm test`, and `npm run nemesis` without options): about 3 minutes with its heal. */
export const BOUNDED_RUN = { durationMs: 45_000, faultMs: 4_000, clients: 3 } as const;

export interface NemesisResult {
  seed: number;
  summary: ReturnType<typeof summarize>;
  faults: Record<string, number>;
  violations: Violation[];
}

/** mulberry32: a small seeded PRNG, so a seed replays the same choices. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
/** Jobs retry after 2, 4, 8, 16 and 32 s: what can still apply without the healer has by then. */
const DRAIN_WAIT_MS = 60_000;
const PATHS = ['/a', '/b', '/c', '/d/x', '/d/y', '/d/e/z'];
const DIRECTORIES = ['/d', '/d/e'];

export async function runNemesis(
  cluster: Cluster,
  user: { charm: CharmClient; charmId: string },
  options: NemesisOptions,
): Promise<NemesisResult> {
  const log = options.log ?? (() => {});
  // One stream of choices per client and one for the faults: a seed replays the same plans.
  const faultRandom = seededRandom(options.seed);
  const clientRandoms = Array.from({ length: options.clients }, (_, i) => seededRandom(options.seed + i + 1));
  const pickWith =
    (random: () => number) =>
    <T>(list: readonly T[]): T =>
      list[Math.floor(random() * list.length)] as T;
  const authorization = `bearer ${tokens(cluster).valid(user.charmId)}`;
  const started = Date.now();
  const now = () => Date.now() - started;
  const history: Operation[] = [];
  const faults: Record<string, number> = {};
  const stopAt = Date.now() + options.durationMs;
  const workDir = join(cluster.topology().runDir, 'nemesis');
  rmSync(workDir, { recursive: true, force: true });
  mkdirSync(workDir, { recursive: true });
  let fileCounter = 0;

  const http = httpChannel(cluster, authorization);
  const cli = cliChannel(user.charm, workDir);

  /** One planned operation through one way in (raw HTTP or the CLI), recorded under that way's path names. */
  async function oneOperation(random: () => number, via: Channel) {
    const pick = pickWith(random);
    const roll = random();
    const path = pick(PATHS);
    const startMs = now();
    if (roll < 0.5) {
      const bytes = Buffer.from(
        `${options.seed}:${++fileCounter}:${'x'.repeat(Math.floor(random() * 2000))}`,
      );
      const outcome = await via.write(path, bytes).catch(() => 'unknown' as const);
      history.push({
        op: 'write',
        path: via.name(path),
        sha256: sha256(bytes),
        outcome,
        startMs,
        endMs: now(),
      });
    } else if (roll < 0.6) {
      const target = random() < 0.5 ? path : pick(DIRECTORIES);
      const outcome = await via.remove(target).catch(() => 'unknown' as const);
      history.push({ op: 'delete', path: via.name(target), outcome, startMs, endMs: now() });
    } else {
      const seen = await via.read(path).catch(() => undefined);
      if (seen !== undefined)
        history.push({ op: 'read', path: via.name(path), seen, outcome: 'ok', startMs, endMs: now() });
    }
  }

  const clientLoop = async (index: number) => {
    const random = clientRandoms[index] as () => number;
    while (Date.now() < stopAt) {
      await oneOperation(random, index === 0 && random() < 0.3 ? cli : http);
    }
  };

  const healers: (() => Promise<void>)[] = [];
  const lostTails: LostTail[] = [];
  const pickFault = pickWith(faultRandom);
  async function applyFault(kind: FaultKind) {
    faults[kind] = (faults[kind] ?? 0) + 1;
    const backend = pickFault(cluster.backends);
    log(`[${now()} ms] fault ${kind}${kind.includes('backend') ? ` on ${backend.info.name}` : ''}`);
    switch (kind) {
      case 'kill-backend':
        backend.process.kill('SIGKILL');
        return () => backend.process.start();
      case 'pause-backend':
        backend.process.kill('SIGSTOP');
        return async () => backend.process.kill('SIGCONT');
      case 'kill-gateway':
        cluster.gateway?.kill('SIGKILL');
        return async () => {
          await waitUntil(() => !cluster.gateway?.isRunning);
          await cluster.gateway?.start();
        };
      case 'pause-gateway':
        cluster.gateway?.kill('SIGSTOP');
        return async () => cluster.gateway?.kill('SIGCONT');
      case 'pause-replicator':
        cluster.replicator?.kill('SIGSTOP');
        return async () => cluster.replicator?.kill('SIGCONT');
      case 'kill-redis':
        cluster.redis.process.kill('SIGKILL');
        return async () => {
          await waitUntil(() => !cluster.redis.process.isRunning);
          await cluster.redis.process.start();
        };
      case 'stop-s3':
        await cluster.s3.process.stop();
        return () => cluster.s3.process.start();
      case 'wipe-backend':
        await backend.process.stop();
        rmSync(join(backend.info.dataDir, 'files', user.charmId), { recursive: true, force: true });
        return () => backend.process.start();
      case 'redis-lost-tail': {
        const copiedMs = now(); // the copy is the fault's first step: a little early, never late
        const heal = await injectClusterFault(kind, { cluster, backend, log });
        lostTails.push({ copiedMs, restoredMs: now() });
        return heal;
      }
      default:
        return injectClusterFault(kind, { cluster, backend, log });
    }
  }

  const faultLoop = async () => {
    while (Date.now() + options.faultMs < stopAt) {
      await sleepMs(500 + Math.floor(faultRandom() * 1500));
      const heal = await applyFault(pickFault(options.faultKinds ?? FAULT_KINDS));
      healers.push(heal);
      await sleepMs(options.faultMs);
      await heal();
      healers.pop();
    }
  };

  await Promise.all([...Array.from({ length: options.clients }, (_, i) => clientLoop(i)), faultLoop()]);
  for (const heal of healers.splice(0)) await heal();
  const quietSinceMs = Date.now(); // no write and no fault after this

  // Heal: everything is up; the pipeline drains, then the healer runs (twice: repairs it enqueues get applied).
  // A job that failed for good keeps its pending marker until a scan clears it: a drain gives up after a while.
  log(`[${now()} ms] healing`);
  const state = clusterState(cluster);
  try {
    await waitUntil(
      async () =>
        (await fetch(gatewayUrl(cluster, '/v1/fs/'), { headers: { Authorization: authorization } }).then(
          (r) => r.status,
          () => 0,
        )) === 200,
      60_000,
    );
    // The final scans judge every refused write by its record: the gateway has put each back on record (or given
    // up, and logged it), and every copy is older than the healer's lost-write grace (row L1 adopts none younger).
    const horizonMs = Number(cluster.appEnv.CRING_REFUSAL_RECORD_HORIZON_MS);
    await waitUntil(
      async () => (await gatewayGauge(cluster, 'cring_refusals_awaiting_record')) === 0,
      horizonMs + 30_000,
    );
    const graceMs = Number(cluster.appEnv.CRING_LOST_WRITE_GRACE_MS);
    await waitUntil(() => Date.now() > quietSinceMs + graceMs, graceMs + 5_000);
    log(`[${now()} ms] every refusal on record, the lost-write grace passed`);
    // After a ring change the runbook prunes the former owners once the new ones hold everything.
    const rounds = [['--scan'], ['--scan'], ...(faults['ring-change'] ? [['--scan', '--prune']] : [])];
    for (const [round, args] of rounds.entries()) {
      await state
        .waitForDrain(user.charmId, DRAIN_WAIT_MS)
        .catch((err) => log(`drain: ${(err as Error).message}`));
      const scan = await runCli(
        cluster,
        'apps/healer/src/cli.ts',
        [...args, '--json', '--user', user.charmId],
        {
          timeoutMs: 300_000,
        },
      );
      writeFileSync(
        join(cluster.topology().runDir, `nemesis-healer-${round + 1}.json`),
        scan.stdout + scan.stderr,
      );
      log(`healer round ${round + 1} (${args.join(' ')}): exit ${scan.code}`);
    }
    await state
      .waitForDrain(user.charmId, DRAIN_WAIT_MS)
      .catch((err) => log(`drain: ${(err as Error).message}`));
    // What the manifest names once healed (versions, holders), for diagnosing a violation after Redis is gone.
    const entries = Object.fromEntries(await state.manifest.entriesWithin(user.charmId));
    writeFileSync(
      join(cluster.topology().runDir, 'nemesis-manifest.json'),
      `${JSON.stringify(entries, (_, value) => (value instanceof Set ? [...value] : value), 1)}\n`,
    );
  } finally {
    state.close();
  }

  // What the gateway serves raw for every path the workload names and every path a store holds (the CLI's
  // encrypted names too): what every owner and the bucket must hold once healed.
  const stores = new Map<string, Map<string, string>>();
  const formerOwners = new Map<string, Map<string, string>>();
  const owners = ownersOf(cluster, user.charmId);
  cluster.backends.forEach((backend, index) => {
    const files = filesOnBackend(cluster, index, user.charmId);
    (owners.includes(backend.info.name) ? stores : formerOwners).set(backend.info.name, files);
  });
  stores.set('s3', await objectsInS3(cluster, user.charmId));
  // Every final read needs an answer: a 503 is not an absent file.
  const answered = async (via: Channel, path: string) => {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const seen = await via.read(path);
      if (seen !== undefined) return seen;
      await sleepMs(500);
    }
    log(`no answer for ${via.name(path)} within 60 s of healing`);
    return UNANSWERED;
  };
  const servedRaw = new Map<string, string>();
  for (const path of new Set([...PATHS, ...[...stores.values()].flatMap((files) => [...files.keys()])]))
    servedRaw.set(path, await answered(http, path));
  // What each client sees: raw paths as served, the CLI's paths decrypted by the CLI.
  const served = new Map(PATHS.map((path) => [path, servedRaw.get(path) ?? ABSENT]));
  for (const path of PATHS) served.set(cli.name(path), await answered(cli, path));
  const violations = checkHistory(history, { served, servedRaw, stores, formerOwners }, lostTails);
  writeFileSync(
    join(cluster.topology().runDir, 'nemesis-history.json'),
    `${JSON.stringify({ seed: options.seed, faults, lostTails, history, violations }, null, 1)}\n`,
  );
  return { seed: options.seed, summary: summarize(history), faults, violations };
}

function sleepMs(ms: number) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleepMs(100);
  }
  throw new Error(`condition not met within ${timeoutMs} ms`);
}
