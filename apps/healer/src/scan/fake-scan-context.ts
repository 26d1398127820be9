/**
 * For the decision modules' unit tests: a scan context whose backends, bucket, manifest and queues are small
 * fakes holding what each test puts in them, and a `UserScan` built from listings.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { BackupObject, BackupStore, BackupVersion } from '@cring/backup-store';
import type { BackendClient } from '@cring/charm';
import { type BackendJob, type JobQueues, jobIdOf, type S3Job } from '@cring/jobs';
import type { Manifest, ManifestEntry, WriteIntent } from '@cring/manifest';
import { createRing } from '@cring/ring';
import type { BackendListing, CopyInfo, S3Listing } from './inventory.ts';
import type { JobStates } from './job-states.ts';
import { createTaskPool } from './rate-limiter.ts';
import { createRepairs } from './repairs.ts';
import { createRecorder } from './report.ts';
import type { ScanContext, UserScan } from './scan-context.ts';

export const CHARM_ID = '00000000-0000-4000-8000-000000000001';
export const sha256Of = (bytes: string) => createHash('sha256').update(bytes).digest('hex');

/** A file entry of these bytes, held by the first three backends. */
export const fileEntryOf = (bytes: string, version: number, atMs: number) => ({
  kind: 'file' as const,
  version,
  sha256: sha256Of(bytes),
  size: Buffer.byteLength(bytes),
  mode: 420,
  holders: ['b1', 'b2', 'b3'],
  atMs,
});

export interface FakeWorld {
  /** Per backend: path → bytes. */
  backends: Map<string, Map<string, string>>;
  /** Calls the scan made that change something, in order (`removeTombstone /p v3`, `delete b1 /p`, …). */
  calls: string[];
  /** Repair jobs asked for, as `target kind path v<version>`. */
  jobs: string[];
}

const describeJob = (job: BackendJob | S3Job) =>
  `${job.kind} ${'path' in job ? job.path : ''} v${'version' in job ? job.version : ''}`;

export function fakeScanContext(
  world: FakeWorld,
  options: Partial<ScanContext['options']> & {
    governing?: (path: string) => ManifestEntry | undefined;
    /** Open write intents, and the paths whose writer still holds the lock. */
    intents?: WriteIntent[];
    inFlight?: ReadonlySet<string>;
    /** The bucket's current object per path, as `head` gives it (with a version id: that object version). */
    backup?: (path: string, versionId?: string) => BackupObject | undefined;
    /** The bucket's history of a path, newest first, as `versions` gives it; an Error: the bucket fails. */
    history?: (path: string) => BackupVersion[] | Error;
  } = {},
): ScanContext {
  const backendNames = [...world.backends.keys()];
  const clients = new Map(
    backendNames.map((name) => {
      const client = {
        async getFile(_charmId: string, path: string) {
          const bytes = world.backends.get(name)?.get(path);
          return bytes === undefined ? undefined : { body: Readable.from([Buffer.from(bytes)]) };
        },
        async putFile(_charmId: string, path: string, file: { body: Readable }) {
          const chunks: Buffer[] = [];
          for await (const chunk of file.body) chunks.push(Buffer.from(chunk as Buffer));
          world.calls.push(`put ${name} ${path}`);
          world.backends.get(name)?.set(path, Buffer.concat(chunks).toString());
        },
        async deletePath(_charmId: string, path: string) {
          world.calls.push(`delete ${name} ${path}`);
          world.backends.get(name)?.delete(path);
        },
      };
      return [name, client as unknown as BackendClient];
    }),
  );
  const manifest = {
    async governing(_charmId: string, path: string) {
      const entry = options.governing?.(path);
      return entry && { ...entry, path };
    },
    async removeHolder(_charmId: string, path: string, version: number, backend: string) {
      world.calls.push(`removeHolder ${path} v${version} ${backend}`);
      return true;
    },
    async addHolder(_charmId: string, path: string, version: number, backend: string) {
      world.calls.push(`addHolder ${path} v${version} ${backend}`);
      return true;
    },
    async lockPath(_charmId: string, path: string) {
      world.calls.push(`lock ${path}`);
      return { release: async () => {}, assertHeld: async () => {} };
    },
    async intents() {
      return options.intents ?? [];
    },
    async intentInFlight(_charmId: string, intent: WriteIntent) {
      return options.inFlight?.has(intent.path) ?? false;
    },
    async intent(_charmId: string, path: string) {
      return options.intents?.find((intent) => intent.path === path);
    },
    async clearIntent(_charmId: string, _lock: unknown, fence: number) {
      world.calls.push(`clearIntent fence ${fence}`);
    },
    async commitWrite(_charmId: string, path: string, file: { sha256: string; holders: string[] }) {
      world.calls.push(`commitWrite ${path} ${file.sha256.slice(0, 8)} ${file.holders.join(',')}`);
      return 101;
    },
    async commitDelete(_charmId: string, path: string, holders: string[], _lock: unknown, atMs: number) {
      world.calls.push(`commitDelete ${path} ${holders.join(',')} at ${atMs}`);
      return 102;
    },
    async removeTombstone(_charmId: string, path: string, version: number) {
      world.calls.push(`removeTombstone ${path} v${version}`);
      return true;
    },
    async removePending(_charmId: string, target: string, jobId: string) {
      world.calls.push(`removePending ${target} ${jobId}`);
    },
  } as unknown as Manifest;
  const queues = {
    async enqueueForBackend(
      target: string,
      job: BackendJob & { path: string },
      extra: { idSuffix?: string },
    ) {
      world.jobs.push(`${target} ${describeJob(job)}`);
      return `${jobIdOf(job)}-${extra.idSuffix}`;
    },
    async enqueueForS3(job: S3Job, extra: { idSuffix?: string }) {
      world.jobs.push(`s3 ${describeJob(job)}`);
      return `${jobIdOf(job)}-${extra.idSuffix}`;
    },
  } as unknown as JobQueues;
  const repairs = createRepairs({ queues, idSuffix: 'heal-test', dryRun: !!options.dryRun });
  return {
    manifest,
    store: {
      head: async (_charmId: string, path: string, versionId?: string) => options.backup?.(path, versionId),
      async *versions(_charmId: string, path: string) {
        const history = options.history?.(path) ?? [];
        if (history instanceof Error) throw history;
        yield* history;
      },
    } as unknown as BackupStore,
    clients,
    backendNames,
    ring: createRing(backendNames),
    replicationFactor: 3,
    limiter: { take: async () => {} } as ScanContext['limiter'],
    pool: createTaskPool(4),
    jobStates: {} as JobStates,
    repairs,
    recorder: createRecorder(),
    options: { deep: false, prune: false, dryRun: false, ...options },
    tombstoneRetentionMs: 7 * 24 * 3600 * 1000,
    pendingGraceMs: 60_000,
    lostWriteGraceMs: 60_000,
    lockWaitMs: 1000,
  };
}

/** A user whose owners are the first three backends and whose listings are what the world holds. */
export function userScanOf(
  world: FakeWorld,
  facts: {
    entries?: Map<string, ManifestEntry>;
    modifiedMs?: (backend: string, path: string) => number | undefined;
    s3?: S3Listing;
    unreachable?: string[];
    alive?: Map<string, string[]>;
  } = {},
): UserScan {
  const listings = new Map<string, BackendListing>();
  for (const [name, files] of world.backends) {
    if (facts.unreachable?.includes(name)) {
      listings.set(name, { state: 'unreachable', reason: 'refused' });
      continue;
    }
    const listed = new Map<string, CopyInfo>();
    for (const [path, bytes] of files) {
      const modifiedMs = facts.modifiedMs?.(name, path);
      listed.set(path, {
        size: Buffer.byteLength(bytes),
        mode: 420,
        ...(modifiedMs !== undefined ? { modifiedMs } : {}),
      });
    }
    listings.set(name, { state: 'listed', files: listed, userMissing: false });
  }
  const names = [...world.backends.keys()];
  return {
    charmId: CHARM_ID,
    openIntents: new Set(),
    versionBefore: 100,
    entries: facts.entries ?? new Map(),
    listings,
    reachable: new Set(names.filter((name) => !facts.unreachable?.includes(name))),
    s3: facts.s3 ?? { state: 'listed', objects: new Map() },
    owners: names.slice(0, 3),
    preference: names,
    alive: facts.alive ?? new Map(),
    covered: new Set(),
    deleteJobs: new Set(),
    recent: 0,
    errors: 0,
  };
}

export function worldOf(backends: Record<string, Record<string, string>>): FakeWorld {
  return {
    backends: new Map(
      Object.entries(backends).map(([name, files]) => [name, new Map(Object.entries(files))]),
    ),
    calls: [],
    jobs: [],
  };
}
