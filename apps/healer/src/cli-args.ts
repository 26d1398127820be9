import { parseArgs } from 'node:util';

export const USAGE = `Usage: healer --scan [options]

Compares every user's files on the backends and in the S3 bucket with the manifest, and enqueues repairs
that the replicator applies: missing or wrong copies on owners are replicated (or restored from S3 when no
backend holds the version), copies of deleted paths are deleted, files the manifest does not know are adopted.

Options:
  --scan                          run a scan (required)
  --user <charm_id>               scan this user only
  --deep                          compare the sha256 of every copy (reads every byte), not only presence and size
  --dry-run                       report only: enqueue nothing, change nothing
  --prune                         delete copies from backends that are no longer owners, for paths every owner
                                  verifiably holds (after a ring change)
  --resume                        continue an interrupted scan after the last user it finished
  --no-wait                       do not wait for the repair jobs to finish
  --wait-timeout-seconds <n>      how long to wait for them (default: CRING_HEALER_WAIT_TIMEOUT_MS, 600 s)
  --max-requests-per-second <n>   backend and S3 requests per second (default: CRING_HEALER_MAX_REQUESTS_PER_SECOND, 200)
  --json                          print one JSON report on stdout and nothing else
  -h, --help                      show this help

Environment: CRING_BACKENDS, CRING_ISSUER, CRING_SERVER_KEY_FILE, REDIS_URL, S3_BUCKET, S3_ACCESS_KEY_ID and
S3_SECRET_ACCESS_KEY are required (as for the replicator); S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE,
CRING_REPLICATION_FACTOR (3), CRING_AGENTS (name=http://agent:port,…: also find users in the backends' DBs),
CRING_TOMBSTONE_RETENTION_MS (7 days), CRING_HEALER_CONCURRENCY (8), CRING_HEALER_USER_CONCURRENCY (2).
The bucket must keep versions (refused with exit code 2 otherwise, unless CRING_S3_ALLOW_UNVERSIONED=true);
the scheduled worker prunes noncurrent versions older than CRING_S3_RETENTION_DAYS (unset: keeps them all).
When none of CRING_*, REDIS_URL or S3_* is set, the settings of the local cluster that \`npm run dev\` runs
from this checkout are used (.cring/dev/cluster.json).

Exit codes: 0 healthy or everything found was repaired; 1 something remains (or a dry run found problems);
2 usage or configuration error.
`;

export interface CliOptions {
  help: boolean;
  deep: boolean;
  dryRun: boolean;
  prune: boolean;
  resume: boolean;
  json: boolean;
  wait: boolean;
  user?: string;
  waitTimeoutMs?: number;
  maxRequestsPerSecond?: number;
}

/** A bad command line: the message says what is wrong and how to fix it. */
export class UsageError extends Error {
  readonly code = 'HEALER_USAGE';
  override name = 'UsageError';
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (value.trim() === '' || !Number.isFinite(number) || number <= 0) {
    throw new UsageError(`${flag} expects a number above 0, got "${value}"`);
  }
  return number;
}

export function parseCliArgs(argv: readonly string[]): CliOptions {
  let values: ReturnType<typeof parse>['values'];
  try {
    values = parse(argv).values;
  } catch (err) {
    // parseArgs' messages name the flag; add the way out.
    const message = (err as Error).message.replace(/\.\s*To specify.*$/s, '').replace(/\s*\n\s*/g, ' ');
    throw new UsageError(`${message}; see healer --help`);
  }
  if (values.help)
    return { help: true, deep: false, dryRun: false, prune: false, resume: false, json: false, wait: false };
  if (!values.scan) throw new UsageError('nothing to do: pass --scan (see healer --help)');
  if (values.user !== undefined && !UUID.test(values.user)) {
    throw new UsageError(`--user expects a charm_id (a UUID such as 3f0c…-…), got "${values.user}"`);
  }
  if (values.user !== undefined && values.resume) {
    throw new UsageError('--resume continues a full scan: it cannot be combined with --user');
  }
  const waitTimeoutSeconds = positiveNumber('--wait-timeout-seconds', values['wait-timeout-seconds']);
  const maxRequestsPerSecond = positiveNumber('--max-requests-per-second', values['max-requests-per-second']);
  return {
    help: false,
    deep: values.deep === true,
    dryRun: values['dry-run'] === true,
    prune: values.prune === true,
    resume: values.resume === true,
    json: values.json === true,
    wait: values['no-wait'] !== true,
    ...(values.user !== undefined ? { user: values.user.toLowerCase() } : {}),
    ...(waitTimeoutSeconds !== undefined ? { waitTimeoutMs: waitTimeoutSeconds * 1000 } : {}),
    ...(maxRequestsPerSecond !== undefined ? { maxRequestsPerSecond } : {}),
  };
}

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      scan: { type: 'boolean' },
      user: { type: 'string' },
      deep: { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      prune: { type: 'boolean' },
      resume: { type: 'boolean' },
      'no-wait': { type: 'boolean' },
      'wait-timeout-seconds': { type: 'string' },
      'max-requests-per-second': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
