import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { repoRoot, startScratchRedis } from '@cring/local-cluster';
import { createManifest, encodeEntry, manifestKeys } from '@cring/manifest';
import type { Redis } from 'ioredis';
import { percentile } from './latency-stats.ts';

/*
 * `npm run bench:scale`: the manifest's own cost as it grows, in a real redis-server. A synthetic manifest of
 * 10,000 users grows from 10k to 100k to 1,000,000 files; at each size: Redis bytes per file and per user, commit
 * and read-lookup latency, the longest Redis was blocked by one command or script (SLOWLOG), a recursive delete
 * of a tree a tenth of the size (100,000 files at 1M), and the rate of the manifest reads a healer scan makes.
 * BENCH_QUICK=true stops at 100k.
 */

const USERS = 10_000;
const HOLDERS = ['charm1', 'charm2', 'charm3'];

const nowMs = () => performance.now();
const userId = (i: number) => `scale-user-${String(i).padStart(5, '0')}`;
const filePath = (j: number) => `/notes/d${j % 10}/file-${j}.md`;
const sha = (n: number) => n.toString(16).padStart(64, '0');

function entryJson(version: number): string {
  return encodeEntry({
    kind: 'file',
    version,
    sha256: sha(version),
    size: 4096,
    mode: 420,
    holders: HOLDERS,
    atMs: 1_760_000_000_000,
  });
}

/** Adds files `from..to-1` of every user (so each user has `to` files), written in big pipelined HSETs. */
async function fill(redis: Redis, from: number, to: number): Promise<void> {
  const perCommand = 100;
  for (let first = 0; first < USERS; first += 500) {
    const batch = redis.pipeline();
    for (let u = first; u < Math.min(USERS, first + 500); u++) {
      const id = userId(u);
      for (let j = from; j < to; j += perCommand) {
        const fields: string[] = [];
        for (let k = j; k < Math.min(to, j + perCommand); k++) fields.push(filePath(k), entryJson(k + 1));
        batch.hset(manifestKeys.entries(id), ...fields);
      }
      batch.set(manifestKeys.version(id), String(to));
      batch.sadd(manifestKeys.users(), id);
    }
    await batch.exec();
  }
}

/** A tree of `count` files below /tree of one user, as the gateway's commits would leave it. */
async function fillTree(redis: Redis, charmId: string, count: number): Promise<void> {
  for (let first = 0; first < count; first += 1000) {
    const fields: string[] = [];
    for (let k = first; k < Math.min(count, first + 1000); k++)
      fields.push(`/tree/d${k % 100}/f${k}`, entryJson(k + 1));
    await redis.hset(manifestKeys.entries(charmId), ...fields);
  }
  await redis.set(manifestKeys.version(charmId), String(count));
  await redis.sadd(manifestKeys.users(), charmId);
}

async function usedMemory(redis: Redis): Promise<number> {
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

/**
 * The commands and scripts the slow log kept since the last reset: the longest, and the median of the top-level
 * steps (scripts and HSCANs; commands run inside a script are logged too, and are not steps of their own).
 */
async function blocks(redis: Redis): Promise<{ us: number; command: string; p50Us: number }> {
  const entries = (await redis.call('SLOWLOG', 'GET', '-1')) as [number, number, number, string[]][];
  let longest = { us: 0, command: '-' };
  const durations: number[] = [];
  for (const [, , us, args] of entries) {
    const command = String(args[0]).toLowerCase();
    if (command === 'slowlog' || command === 'config') continue;
    if (command === 'evalsha' || command === 'eval' || command === 'hscan') durations.push(us);
    if (us > longest.us) longest = { us, command };
  }
  return { ...longest, p50Us: percentile(durations, 50) };
}

async function timed<T>(n: number, run: (i: number) => Promise<T>): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const started = nowMs();
    await run(i);
    out.push(nowMs() - started);
  }
  return out;
}

interface SizeFigures {
  files: number;
  redisBytes: number;
  bytesPerFile: number;
  bytesPerUser: number;
  /** Bytes each file added since the previous size cost (undefined at the first size). */
  marginalBytesPerFile?: number;
  commitP50Ms: number;
  commitP99Ms: number;
  lookupP50Ms: number;
  lookupP99Ms: number;
  /** Longest single command or script during the commits and lookups. */
  longestBlockUs: number;
  longestBlockCommand: string;
  treeFiles: number;
  deleteMs: number;
  deleteLongestBlockUs: number;
  deleteLongestBlockCommand: string;
  /** The median command or script of the delete (HSCAN steps and sweep chunks). */
  deleteMedianBlockUs: number;
  /** Reading every entry of the tree's owner in one HGETALL (what entriesWithin did before): one command's block. */
  treeOwnerReadUs: number;
  /** entriesWithin of the tree's owner (HSCAN steps): its longest step, and the whole read. */
  treeOwnerStepUs: number;
  treeOwnerMedianStepUs: number;
  treeOwnerScanMs: number;
  scanUsersPerSec: number;
  scanEntriesPerSec: number;
}

async function measureSize(
  redis: Redis,
  manifest: ReturnType<typeof createManifest>,
  files: number,
  base: number,
  log: (m: string) => void,
): Promise<SizeFigures> {
  await redis.call('SLOWLOG', 'RESET'); // the log's own entries are not the manifest's bytes
  const redisBytes = (await usedMemory(redis)) - base;
  const perUser = files / USERS;
  const random = (limit: number) => Math.floor(Math.random() * limit);

  await redis.call('SLOWLOG', 'RESET');
  // A commit as the gateway makes it: under the path's lock (take, commit, release).
  const commits = await timed(2000, async (i) => {
    const charmId = userId(random(USERS));
    const path = `/bench/new-${files}-${i}`;
    const lock = await manifest.lockPath(charmId, path);
    try {
      await manifest.commitWrite(
        charmId,
        path,
        { sha256: sha(i), size: 4096, mode: 420, holders: HOLDERS.slice(0, 2) },
        lock,
      );
    } finally {
      await lock.release();
    }
  });
  const lookups = await timed(5000, () =>
    manifest.readRoute(userId(random(USERS)), filePath(random(perUser))),
  );
  const block = await blocks(redis);

  // A recursive delete of a tree a tenth of the manifest's size, owned by one user.
  const treeFiles = files / 10;
  const owner = `scale-tree-${files}`;
  await fillTree(redis, owner, treeFiles);
  await redis.call('SLOWLOG', 'RESET');
  const hgetallStarted = nowMs();
  await redis.hgetall(manifestKeys.entries(owner));
  const treeOwnerReadMs = nowMs() - hgetallStarted;
  const treeRead = await blocks(redis);
  await redis.call('SLOWLOG', 'RESET');
  const scanStartedAt = nowMs();
  const scanned = await manifest.entriesWithin(owner);
  const treeOwnerScanMs = nowMs() - scanStartedAt;
  const treeScan = await blocks(redis);
  if (scanned.size !== treeFiles)
    throw new Error(`entriesWithin found ${scanned.size} of ${treeFiles} entries`);
  await redis.call('SLOWLOG', 'RESET');
  const deleteStarted = nowMs();
  const treeLock = await manifest.lockPath(owner, '/tree');
  await manifest.commitDelete(owner, '/tree', HOLDERS, treeLock);
  await treeLock.release();
  const deleteMs = nowMs() - deleteStarted;
  const deleteBlock = await blocks(redis);
  const left = await redis.hlen(manifestKeys.entries(owner));
  if (left !== 1) throw new Error(`the delete of /tree left ${left} entries, expected only the tombstone`);
  log(`  delete of ${treeFiles} files: ${deleteMs.toFixed(0)} ms, longest block ${deleteBlock.us} µs`);

  // The manifest side of a healer scan: per user, finish sweeps, read every entry and pending marker.
  const scanUsers = Math.min(USERS, 2000);
  const scanStarted = nowMs();
  let scanEntries = 0;
  for (let u = 0; u < scanUsers; u++) {
    await manifest.finishSweeps(userId(u));
    scanEntries += (await manifest.entriesWithin(userId(u))).size;
    await manifest.pendingJobs(userId(u));
  }
  const scanSeconds = (nowMs() - scanStarted) / 1000;

  return {
    files,
    redisBytes,
    bytesPerFile: redisBytes / files,
    bytesPerUser: redisBytes / USERS,
    commitP50Ms: percentile(commits, 50),
    commitP99Ms: percentile(commits, 99),
    lookupP50Ms: percentile(lookups, 50),
    lookupP99Ms: percentile(lookups, 99),
    longestBlockUs: block.us,
    longestBlockCommand: block.command,
    treeFiles,
    deleteMs,
    deleteLongestBlockUs: deleteBlock.us,
    deleteLongestBlockCommand: deleteBlock.command,
    deleteMedianBlockUs: deleteBlock.p50Us,
    treeOwnerReadUs: treeRead.us || Math.round(treeOwnerReadMs * 1000),
    treeOwnerStepUs: treeScan.us,
    treeOwnerMedianStepUs: treeScan.p50Us,
    treeOwnerScanMs,
    scanUsersPerSec: scanUsers / scanSeconds,
    scanEntriesPerSec: scanEntries / scanSeconds,
  };
}

const ROWS: { label: string; cell: (f: SizeFigures) => string; value: (f: SizeFigures) => number }[] = [
  {
    label: 'Redis bytes (manifest)',
    cell: (f) => `${(f.redisBytes / 2 ** 20).toFixed(1)} MiB`,
    value: (f) => f.redisBytes,
  },
  { label: 'bytes per file', cell: (f) => f.bytesPerFile.toFixed(0), value: (f) => f.bytesPerFile },
  { label: 'bytes per user', cell: (f) => f.bytesPerUser.toFixed(0), value: (f) => f.bytesPerUser },
  {
    label: 'bytes per added file',
    cell: (f) => f.marginalBytesPerFile?.toFixed(0) ?? '',
    value: (f) => f.marginalBytesPerFile ?? Number.NaN,
  },
  { label: 'commit p50 ms', cell: (f) => f.commitP50Ms.toFixed(3), value: (f) => f.commitP50Ms },
  { label: 'commit p99 ms', cell: (f) => f.commitP99Ms.toFixed(3), value: (f) => f.commitP99Ms },
  { label: 'read lookup p50 ms', cell: (f) => f.lookupP50Ms.toFixed(3), value: (f) => f.lookupP50Ms },
  { label: 'read lookup p99 ms', cell: (f) => f.lookupP99Ms.toFixed(3), value: (f) => f.lookupP99Ms },
  {
    label: 'longest block, commits+lookups',
    cell: (f) => `${(f.longestBlockUs / 1000).toFixed(2)} ms (${f.longestBlockCommand})`,
    value: (f) => f.longestBlockUs,
  },
  { label: 'recursive delete: tree files', cell: (f) => String(f.treeFiles), value: (f) => f.treeFiles },
  { label: 'recursive delete: total ms', cell: (f) => f.deleteMs.toFixed(0), value: (f) => f.deleteMs },
  {
    label: 'recursive delete: longest block',
    cell: (f) => `${(f.deleteLongestBlockUs / 1000).toFixed(2)} ms (${f.deleteLongestBlockCommand})`,
    value: (f) => f.deleteLongestBlockUs,
  },
  {
    label: 'recursive delete: median step',
    cell: (f) => `${(f.deleteMedianBlockUs / 1000).toFixed(2)} ms`,
    value: (f) => f.deleteMedianBlockUs,
  },
  {
    label: 'HGETALL of the tree owner (replaced)',
    cell: (f) => `${(f.treeOwnerReadUs / 1000).toFixed(2)} ms`,
    value: (f) => f.treeOwnerReadUs,
  },
  {
    label: 'entriesWithin of the tree owner: longest step',
    cell: (f) => `${(f.treeOwnerStepUs / 1000).toFixed(2)} ms`,
    value: (f) => f.treeOwnerStepUs,
  },
  {
    label: 'entriesWithin of the tree owner: median step',
    cell: (f) => `${(f.treeOwnerMedianStepUs / 1000).toFixed(2)} ms`,
    value: (f) => f.treeOwnerMedianStepUs,
  },
  {
    label: 'entriesWithin of the tree owner: whole read',
    cell: (f) => `${f.treeOwnerScanMs.toFixed(0)} ms`,
    value: (f) => f.treeOwnerScanMs,
  },
  {
    label: 'scan (manifest side) users/s',
    cell: (f) => f.scanUsersPerSec.toFixed(0),
    value: (f) => f.scanUsersPerSec,
  },
  {
    label: 'scan (manifest side) entries/s',
    cell: (f) => f.scanEntriesPerSec.toFixed(0),
    value: (f) => f.scanEntriesPerSec,
  },
];

function formatScale(figures: SizeFigures[]): string {
  const heads = ['', ...figures.map((f) => `${f.files.toLocaleString('en')} files`), 'growth first→last'];
  const lines = ROWS.map((row) => {
    const first = figures[0] as SizeFigures;
    const last = figures[figures.length - 1] as SizeFigures;
    const growth = row.value(last) / row.value(first);
    return [row.label, ...figures.map(row.cell), Number.isFinite(growth) ? `${growth.toFixed(2)}×` : ''];
  });
  const widths = heads.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] as string).length)));
  const format = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join(' │ ');
  return [format(heads), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...lines.map(format)].join('\n');
}

async function main(): Promise<number> {
  const quick = process.env.BENCH_QUICK === 'true';
  const sizes = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
  const log = (m: string) => console.error(`[bench:scale ${(nowMs() / 1000).toFixed(1)}s] ${m}`);
  const scratch = await startScratchRedis();
  const redis = scratch.redis;
  try {
    // Every command above 50 µs is logged, so the longest command or script of a phase can be read back (a lower
    // threshold logs every command inside the scripts too, and slows them down).
    await redis.config('SET', 'slowlog-log-slower-than', '50');
    await redis.config('SET', 'slowlog-max-len', '100000');
    const manifest = createManifest(redis);
    const base = await usedMemory(redis);
    const figures: SizeFigures[] = [];
    let filled = 0;
    for (const files of sizes) {
      log(`filling to ${files} files over ${USERS} users`);
      await fill(redis, filled / USERS, files / USERS);
      filled = files;
      const previous = figures[figures.length - 1];
      const current = await measureSize(redis, manifest, files, base, log);
      if (previous)
        current.marginalBytesPerFile = (current.redisBytes - previous.redisBytes) / (files - previous.files);
      figures.push(current);
      // The tree's tombstone and the extra commits stay; they are a rounding error of the next size.
    }
    const version = (await redis.info('server')).match(/redis_version:(\S+)/)?.[1];
    console.log(formatScale(figures));
    console.log(
      `\nnote: redis-server ${version}, ${USERS} users; "longest block" is the slowest single command or script ` +
        `(SLOWLOG, ≥50 µs; on a shared machine a descheduled redis-server inflates the longest, the median is robust). The scan row is the manifest reads of a healer scan ` +
        '(sweeps, entries, pending markers per user), without the backend listings it compares them with.',
    );
    const outDir = join(repoRoot, '.cring', 'bench');
    mkdirSync(outDir, { recursive: true });
    writeFileSync(join(outDir, 'scale.json'), `${JSON.stringify({ users: USERS, figures }, null, 2)}\n`);
    return 0;
  } finally {
    await scratch.stop();
  }
}

process.exit(await main());
