import type { WaitResult } from './wait.ts';

/** Counts of one scan. In a dry run, the repair counts say what the scan would have done. */
export interface ScanStats {
  users: number;
  /** Distinct paths looked at (live files, copies of deleted paths, files the manifest did not know). */
  files: number;
  /** Their sizes added up (the manifest's size, else a copy's). */
  bytes: number;
  /** Bytes read and hashed (deep scans, adoption, pruning). */
  hashedBytes: number;
  /** Copies (on owners, or in S3) of a live version that are absent. */
  missing: number;
  sizeMismatched: number;
  /** Same size, other sha256: only a deep scan (or an adoption) sees these. */
  hashMismatched: number;
  /** Copies of paths a tombstone covers, still on a backend or in S3. */
  deletedCopies: number;
  /** Files the manifest did not know, now recorded as live. */
  adopted: number;
  /** Adopted files whose copies held different bytes. */
  disagreements: number;
  /** Acknowledged writes the manifest had lost (newer bytes on a quorum), recorded as the current version again. */
  lostWritesRecovered: number;
  /** Acknowledged deletes the manifest had lost (the bucket's delete marker proves them), recorded again. */
  lostDeletesRecovered: number;
  /** Objects only the bucket has, unknown to the manifest and to every backend: kept, not restored. */
  s3Only: number;
  /** Paths changed during the scan (left to the pipeline), or lost writes younger than the grace: the next scan judges them. */
  recent: number;
  holdersFixed: number;
  tombstonesCollected: number;
  pruned: number;
  staleMarkersCleared: number;
  /** Writes that were never acknowledged and whose writer is gone, rolled back to the last acknowledged state. */
  writesRolledBack: number;
  /** Such writes that could not be rolled back yet (their paths are left alone: not adopted, not repaired). */
  intentsLeftOpen: number;
  repairsEnqueued: number;
  repairsAlreadyQueued: number;
  /** Problems with no way to repair them (no copy anywhere, or the backup is another version). */
  unrepairable: number;
  /** Users whose scan failed part-way (see findings). */
  userErrors: number;
}

export interface Finding {
  charmId: string;
  path?: string;
  /** A backend name, or `s3`. */
  target?: string;
  problem: string;
  action: string;
  detail?: string;
  jobId?: string;
}

export interface ScanReport {
  scanId: string;
  startedAt: string;
  finishedAt: string;
  scanSeconds: number;
  options: {
    deep: boolean;
    prune: boolean;
    dryRun: boolean;
    resume: boolean;
    user?: string;
    maxRequestsPerSecond: number;
  };
  /** Users in this scan (after --user / --resume). */
  totalUsers: number;
  resumedAfter?: string;
  /** Stopped before every user was scanned (the cursor keeps the place for --resume). */
  interrupted: boolean;
  stats: ScanStats;
  rates: { filesPerSecond: number; mibPerSecond: number };
  /** Backends or S3 the scan could not list or read: what they hold is unverified. */
  unreachable: { target: string; reason: string }[];
  findings: Finding[];
  findingsOmitted: number;
  /** Set once the CLI waited for the repairs. */
  wait?: WaitResult;
  healthy: boolean;
  exitCode: 0 | 1;
}

const MAX_FINDINGS = 1000;

export function emptyStats(): ScanStats {
  return {
    users: 0,
    files: 0,
    bytes: 0,
    hashedBytes: 0,
    missing: 0,
    sizeMismatched: 0,
    hashMismatched: 0,
    deletedCopies: 0,
    adopted: 0,
    disagreements: 0,
    lostWritesRecovered: 0,
    lostDeletesRecovered: 0,
    s3Only: 0,
    recent: 0,
    holdersFixed: 0,
    tombstonesCollected: 0,
    pruned: 0,
    staleMarkersCleared: 0,
    writesRolledBack: 0,
    intentsLeftOpen: 0,
    repairsEnqueued: 0,
    repairsAlreadyQueued: 0,
    unrepairable: 0,
    userErrors: 0,
  };
}

/** Collects what a scan finds; findings past the first thousand are only counted. */
export function createRecorder() {
  const stats = emptyStats();
  const findings: Finding[] = [];
  let findingsOmitted = 0;
  const unreachable = new Map<string, string>();
  return {
    stats,
    finding(finding: Finding) {
      if (findings.length < MAX_FINDINGS) findings.push(finding);
      else findingsOmitted++;
    },
    unreachable(target: string, reason: string) {
      if (!unreachable.has(target)) unreachable.set(target, reason);
    },
    snapshot() {
      return {
        findings,
        findingsOmitted,
        unreachable: [...unreachable].map(([target, reason]) => ({ target, reason })),
      };
    },
  };
}

export type Recorder = ReturnType<typeof createRecorder>;

/** Problems a dry run found (each would have been repaired). */
function problemsFound(stats: ScanStats): number {
  return (
    stats.missing +
    stats.sizeMismatched +
    stats.hashMismatched +
    stats.deletedCopies +
    stats.adopted +
    stats.lostWritesRecovered +
    stats.lostDeletesRecovered +
    stats.staleMarkersCleared +
    stats.writesRolledBack +
    stats.intentsLeftOpen
  );
}

/**
 * Whether anything is left to do: 0 when the cluster was healthy or every repair was confirmed, 1 otherwise (a
 * dry run's findings, repairs not waited for or not finished, roll-backs unfinished, failures, unreachable places,
 * an interruption).
 */
export function finalize(report: Omit<ScanReport, 'healthy' | 'exitCode'>): ScanReport {
  const s = report.stats;
  const tracked = s.repairsEnqueued + s.repairsAlreadyQueued;
  const unconfirmed = report.options.dryRun
    ? problemsFound(s)
    : report.wait
      ? report.wait.failed.length + report.wait.pending
      : tracked;
  // A roll-back left unfinished (row I3) remains too; a dry run counts its intents among the problems found.
  const leftOpen = report.options.dryRun ? 0 : s.intentsLeftOpen;
  const remaining =
    unconfirmed +
    leftOpen +
    s.unrepairable +
    s.userErrors +
    report.unreachable.length +
    (report.interrupted ? 1 : 0);
  const healthy = remaining === 0 && tracked === 0 && problemsFound(s) === 0;
  return { ...report, healthy, exitCode: remaining === 0 ? 0 : 1 };
}

const MIB = 1024 * 1024;

export function ratesOf(stats: ScanStats, seconds: number) {
  const per = (value: number) => (seconds > 0 ? value / seconds : 0);
  return { filesPerSecond: per(stats.files), mibPerSecond: per(stats.bytes / MIB) };
}

function table(headers: string[], row: string[]): string {
  const widths = headers.map((h, i) => Math.max(h.length, (row[i] ?? '').length));
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i] as number)).join('  ');
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), line(row)].join('\n');
}

const MAX_PRINTED_FINDINGS = 20;

/** The summary for people: one table, rates, then what else happened and what is left. */
export function formatSummary(report: ScanReport): string {
  const s = report.stats;
  const o = report.options;
  const repaired =
    (o.dryRun ? 0 : s.adopted + s.lostWritesRecovered + s.lostDeletesRecovered) +
    (report.wait?.completed ?? 0);
  const unrepairable = s.unrepairable + (report.wait?.failed.length ?? 0);
  const mode = [
    o.deep ? 'deep: sha256 compared' : 'presence and size; --deep compares sha256',
    o.prune ? 'prune' : '',
    o.dryRun ? 'DRY RUN' : '',
  ]
    .filter(Boolean)
    .join(', ');
  const lines = [
    `healer scan ${report.scanId} (${mode}${o.user ? `, user ${o.user}` : ''}${report.resumedAfter ? `, resumed after ${report.resumedAfter}` : ''})`,
    '',
    table(
      [
        'users',
        'files',
        'missing',
        'size-mismatched',
        'hash-mismatched',
        'repaired',
        'unrepairable',
        'seconds',
      ],
      [
        `${s.users}/${report.totalUsers}`,
        String(s.files),
        String(s.missing),
        String(s.sizeMismatched),
        o.deep ? String(s.hashMismatched) : '-',
        String(repaired),
        String(unrepairable),
        report.scanSeconds.toFixed(1),
      ],
    ),
    '',
    `${report.rates.filesPerSecond.toFixed(1)} files/s, ${report.rates.mibPerSecond.toFixed(2)} MiB/s (${(s.bytes / MIB).toFixed(2)} MiB covered, ${(s.hashedBytes / MIB).toFixed(2)} MiB hashed, at most ${o.maxRequestsPerSecond} requests/s)`,
  ];
  const would = o.dryRun ? 'would be ' : '';
  const extras = [
    [s.deletedCopies, `copies of deleted paths ${o.dryRun ? 'found' : 'being deleted'}`],
    [s.adopted, `files the manifest did not know ${would}adopted`],
    [s.disagreements, 'adopted files whose copies disagreed (see findings)'],
    [s.lostWritesRecovered, 'acknowledged writes the manifest had lost, recorded again'],
    [s.lostDeletesRecovered, `acknowledged deletes the manifest had lost ${would}recorded again`],
    [s.s3Only, 'objects only in S3, unknown to the manifest and every backend (kept, not restored)'],
    [s.tombstonesCollected, `tombstones past retention ${would}collected`],
    [s.pruned, `copies on non-owners ${would}pruned`],
    [s.holdersFixed, `holder lists ${would}corrected`],
    [s.staleMarkersCleared, `stale pending markers ${would}cleared`],
    [
      s.recent,
      'paths changed during the scan, or lost writes younger than the grace (left to the next scan)',
    ],
    [s.userErrors, 'users whose scan failed (see findings)'],
  ] as const;
  for (const [count, text] of extras) if (count > 0) lines.push(`${count} ${text}`);
  const tracked = s.repairsEnqueued + s.repairsAlreadyQueued;
  if (tracked > 0) {
    const head = o.dryRun
      ? `${s.repairsEnqueued} repair jobs would be enqueued (${s.repairsAlreadyQueued} already queued)`
      : `repair jobs: ${s.repairsEnqueued} enqueued, ${s.repairsAlreadyQueued} already queued`;
    const w = report.wait;
    lines.push(
      w
        ? `${head}; ${w.completed} completed${w.dropped ? ` (${w.dropped} superseded)` : ''}, ${w.failed.length} failed, ${w.pending} still queued${w.timedOut ? ' (timed out)' : ''} after ${w.seconds.toFixed(1)} s`
        : `${head}${o.dryRun ? '' : '; not waited for'}`,
    );
  }
  for (const { target, reason } of report.unreachable) lines.push(`unreachable: ${target}: ${reason}`);
  for (const failure of report.wait?.failed.slice(0, MAX_PRINTED_FINDINGS) ?? []) {
    lines.push(
      `failed: ${failure.job.charmId} ${failure.job.path} on ${failure.job.target} (${failure.job.jobId}): ${failure.reason}`,
    );
  }
  if (report.findings.length > 0) {
    lines.push(
      '',
      `findings (${Math.min(report.findings.length, MAX_PRINTED_FINDINGS)} of ${report.findings.length + report.findingsOmitted}; --json lists up to 1000):`,
    );
    for (const f of report.findings.slice(0, MAX_PRINTED_FINDINGS)) {
      lines.push(
        `  ${f.charmId} ${f.path ?? ''} ${f.target ?? ''}: ${f.problem} -> ${f.action}${f.detail ? ` (${f.detail})` : ''}`.replace(
          /\s+/g,
          ' ',
        ),
      );
    }
  }
  lines.push(
    '',
    report.interrupted
      ? 'interrupted: run again with --resume to continue'
      : report.exitCode === 0
        ? report.healthy
          ? 'healthy'
          : 'repaired: everything found was repaired'
        : o.dryRun
          ? 'problems found (dry run: nothing was changed)'
          : 'something remains to be repaired (see above)',
  );
  return lines.join('\n');
}
