import { hostname } from 'node:os';
import { type BackupStore, createBackupStore, historiesOf, versionAt } from '@cring/backup-store';
import { type BackendClient, cleanFsPath, createBackendClient, loadServerKey } from '@cring/charm';
import { connectRedis } from '@cring/config';
import { createJobQueues } from '@cring/jobs';
import { createManifest, createProcessLiveness } from '@cring/manifest';
import { createRing } from '@cring/ring';
import { type CringConfig, UsageError } from '../config.ts';
import { parseRestoreTime } from '../restore/at-time.ts';
import { planRestore, type RestoreAction, type VersionThen } from '../restore/plan.ts';
import { writeRestoredVersion } from '../restore/write-version.ts';

const CHARM_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const LOCK_WAIT_MS = 120_000;
const BACKEND_TIMEOUT_MS = 30_000;

export interface RestoreOptions {
  user?: string;
  path?: string;
  at?: string;
  apply: boolean;
}

/**
 * `cring restore --user <charm id> [--path P] --at <time> [--apply]`: brings a user's tree (or P and what is below
 * it) back to what the S3 backup held at that time. Dry run by default: prints the plan. With --apply, each file
 * to restore is written as a new version through the same rules as an upload (restore/write-version.ts). Files
 * that did not exist then are left as they are and listed. `say` gets the plan and progress lines; the summary is
 * returned. Exit code 1 (thrown) when a file could not be restored.
 */
export async function restoreTree(
  config: CringConfig,
  options: RestoreOptions,
  say: (line: string) => void,
  now = new Date(),
): Promise<string> {
  const { user } = options;
  if (!user || !CHARM_ID.test(user)) {
    throw new UsageError(
      `restore needs --user <charm id> (as \`charm id\` prints it), got ${JSON.stringify(user ?? '')}`,
    );
  }
  const scope = cleanFsPath(options.path ?? '/');
  const at = parseRestoreTime(options.at, now);
  if (!config.s3) throw new UsageError('restore needs S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY');
  if (!config.redis) throw new UsageError('restore needs REDIS_URL or REDIS_SENTINELS (the manifest)');
  if (options.apply && (!config.serverKeyFile || !config.issuer)) {
    throw new UsageError('restore --apply needs CRING_SERVER_KEY_FILE (the cluster key) and CRING_ISSUER');
  }
  const store = createBackupStore(config.s3);
  const redis = connectRedis(config.redis, { maxRetriesPerRequest: 1 });
  redis.on('error', () => {}); // each command fails with its own error
  // Locks carry this process's name: if it dies mid-file, the next writer of the path breaks its lock at once.
  const liveness = createProcessLiveness(redis, `cring-restore@${hostname()}:pid-${process.pid}`);
  const manifest = createManifest(redis, { replicaWait: config.redis.replicaWait, owner: liveness.owner });
  const backendNames = config.backends.map((b) => b.name);
  const queues = createJobQueues({ connection: redis, manifest, backends: backendNames });
  const clients = new Map<string, BackendClient>();
  try {
    const then = await treeAt(store, user, scope, at);
    const plan = planRestore(then, await manifest.entriesWithin(user, '/'), scope);
    const counts = countsOf(plan);
    say(`restore of ${user}:${scope} to ${at.toISOString()} (from s3://${config.s3.bucket})`);
    for (const action of plan) if (action.kind !== 'unchanged') say(describe(action));
    if (!options.apply) {
      return `dry run, nothing changed: ${counts.restore} to restore (${counts.restoreBytes} bytes; ${counts.deleted} deleted and ${counts.changed} overwritten since), ${counts.unchanged} unchanged, ${counts.extra} extra left as is, ${counts.unverifiable} skipped. Run again with --apply to restore.`;
    }

    await liveness.start();
    const key = loadServerKey(config.serverKeyFile as string);
    for (const backend of config.backends) {
      clients.set(
        backend.name,
        createBackendClient({ backend, key, issuer: config.issuer, timeoutMs: BACKEND_TIMEOUT_MS }),
      );
    }
    const ring = createRing(backendNames);
    const writer = {
      manifest,
      queues,
      store,
      clientFor: (name: string) => clients.get(name),
      preference: (charmId: string) => ring.preferenceList(charmId, backendNames.length),
      replicationFactor: config.replicationFactor,
      writeQuorum: config.writeQuorum,
      lockWaitMs: LOCK_WAIT_MS,
    };
    const toRestore = plan.filter((a) => a.kind === 'restore');
    const done = { files: 0, bytes: 0, deleted: 0, unchanged: counts.unchanged, errors: 0 };
    for (const [i, action] of toRestore.entries()) {
      const step = `[${i + 1}/${toRestore.length}]`;
      const { sha256, mode } = action.version as Required<VersionThen>;
      try {
        const result = await writeRestoredVersion(writer, user, action.path, {
          versionId: action.version.versionId,
          sha256,
          mode,
          size: action.version.size,
        });
        if (result.outcome === 'unchanged') {
          done.unchanged++;
          say(`${step} unchanged ${action.path}: it holds these bytes again already`);
          continue;
        }
        done.files++;
        done.bytes += action.version.size;
        if (action.because === 'deleted') done.deleted++;
        say(
          `${step} restored ${action.path} as v${result.version} on ${result.holders.join(', ')} (${action.version.size} bytes)${result.warning ? `; ${result.warning}` : ''}`,
        );
      } catch (err) {
        // One file's failure (its message says what became of it) does not stop the others.
        done.errors++;
        say(`${step} error ${action.path}: ${(err as Error).message}`);
      }
    }
    const summary = `restored ${done.files} files, ${done.bytes} bytes (${done.deleted} deleted-then-restored), ${done.unchanged} unchanged, ${counts.extra} extra left as is, ${counts.unverifiable} skipped, ${done.errors} errors`;
    if (done.errors > 0) throw new Error(summary);
    return summary;
  } finally {
    for (const client of clients.values()) client.close();
    await queues.close().catch(() => {});
    await liveness.stop().catch(() => {});
    redis.disconnect();
    store.close();
  }
}

/** Every path of the user's backup at or below scope, with the version it had at `at` (undefined: absent then). */
async function treeAt(
  store: BackupStore,
  charmId: string,
  scope: string,
  at: Date,
): Promise<Map<string, VersionThen | undefined>> {
  const out = new Map<string, VersionThen | undefined>();
  for await (const history of historiesOf(store.versions(charmId, scope))) {
    const version = versionAt(history.entries, at);
    if (!version) {
      out.set(history.path, undefined);
      continue;
    }
    const head = await store.head(charmId, history.path, version.versionId);
    out.set(history.path, {
      versionId: version.versionId,
      size: head?.size ?? version.size,
      sha256: head?.sha256,
      mode: head?.mode,
    });
  }
  return out;
}

function countsOf(plan: readonly RestoreAction[]) {
  const counts = {
    restore: 0,
    restoreBytes: 0,
    deleted: 0,
    changed: 0,
    unchanged: 0,
    extra: 0,
    unverifiable: 0,
  };
  for (const action of plan) {
    if (action.kind === 'restore') {
      counts.restore++;
      counts.restoreBytes += action.version.size;
      counts[action.because]++;
    } else counts[action.kind]++;
  }
  return counts;
}

function describe(action: RestoreAction): string {
  switch (action.kind) {
    case 'restore':
      return action.because === 'deleted'
        ? `restore   ${action.path}  (deleted since; ${action.version.size} bytes)`
        : `restore   ${action.path}  (overwritten since; ${action.version.size} bytes, sha256 ${action.version.sha256?.slice(0, 12)}… instead of ${action.nowSha256.slice(0, 12)}…)`;
    case 'extra':
      return `extra     ${action.path}  (did not exist then; left as it is)`;
    case 'unverifiable':
      return `skipped   ${action.path}  (${action.reason})`;
    case 'unchanged':
      return `unchanged ${action.path}`;
  }
}
