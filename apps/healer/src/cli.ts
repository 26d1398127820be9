#!/usr/bin/env node
// `healer --scan`: one scan, then (by default) a wait for the repairs it enqueued. Output for people on stdout
// (progress on stderr when it is a TTY), or one JSON report with --json. Exit 0 healthy or fully repaired,
// 1 something remains, 2 usage or configuration error.
import { BucketNotVersionedError, checkBucketVersioning } from '@cring/backup-store';
import { connectRedis, describeRedis, type RedisSettings, withLocalClusterSettings } from '@cring/config';
import type { Redis } from 'ioredis';
import { parseCliArgs, USAGE, UsageError } from './cli-args.ts';
import { ConfigError, loadConfig } from './config.ts';
import { createProgressBar } from './progress-bar.ts';
import { finalize, formatSummary } from './scan/report.ts';
import { runScan } from './scan/scan.ts';
import { waitForRepairs } from './scan/wait.ts';
import { openScanServices } from './scan-services.ts';

const REDIS_CONNECT_TIMEOUT_MS = 5_000;

async function openRedis(settings: RedisSettings): Promise<Redis> {
  const redis = connectRedis(settings, {
    maxRetriesPerRequest: 1,
    lazyConnect: true,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    retryStrategy: (attempt) => (attempt > 3 ? null : 200 * attempt),
  });
  let lastError: Error | undefined;
  redis.on('error', (err: Error) => {
    lastError = err;
  });
  try {
    await redis.connect();
    await redis.ping();
    return redis;
  } catch (err) {
    redis.disconnect();
    throw new ConfigError([
      `REDIS_URL/REDIS_SENTINELS: cannot reach ${describeRedis(settings)} (${(lastError ?? (err as Error)).message}): check the settings and that Redis runs`,
    ]);
  }
}

const say = (line: string) => process.stderr.write(`healer: ${line}\n`);

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let args: ReturnType<typeof parseCliArgs>;
  try {
    args = parseCliArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`healer: ${err.message}\n`);
    return 2;
  }
  if (args.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  let redis: Redis;
  let services: ReturnType<typeof openScanServices>;
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
    redis = await openRedis(config.redis);
    try {
      services = openScanServices(config, redis);
    } catch (err) {
      redis.disconnect();
      throw new ConfigError([`CRING_SERVER_KEY_FILE: ${(err as Error).message}`]);
    }
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`healer: ${err.message}\nSet these in the environment (see healer --help).\n`);
    return 2;
  }

  try {
    await checkBucketVersioning(services.deps.store, {
      endpoint: config.s3.endpoint,
      allowUnversioned: config.s3.allowUnversioned ?? false,
      warn: say,
    });
  } catch (err) {
    await services.close();
    redis.disconnect();
    if (!(err instanceof BucketNotVersionedError)) throw err;
    process.stderr.write(`healer: ${err.message}\n`);
    return 2;
  }

  // First Ctrl-C: stop starting users and report what was done (the cursor keeps the place); second: exit.
  const abort = new AbortController();
  process.once('SIGINT', () => {
    abort.abort();
    process.stderr.write('\nhealer: stopping after the users in progress (Ctrl-C again to quit now)\n');
    process.once('SIGINT', () => process.exit(130));
  });
  const progress = process.stderr.isTTY ? createProgressBar(process.stderr) : undefined;
  try {
    const run = await runScan(
      services.deps,
      {
        deep: args.deep,
        prune: args.prune,
        dryRun: args.dryRun,
        resume: args.resume,
        ...(args.user !== undefined ? { user: args.user } : {}),
        ...(args.maxRequestsPerSecond !== undefined
          ? { maxRequestsPerSecond: args.maxRequestsPerSecond }
          : {}),
        signal: abort.signal,
      },
      (state) => progress?.scan(state),
    );
    progress?.clear();
    let report = run.report;
    if (!args.dryRun && args.wait && run.tracked.length > 0) {
      const wait = await waitForRepairs(run.tracked, services.deps.jobStates, {
        timeoutMs: args.waitTimeoutMs ?? config.waitTimeoutMs,
        signal: abort.signal,
        onProgress: (done, total) => progress?.wait(done, total),
      });
      progress?.clear();
      report = finalize({ ...report, wait });
    }
    process.stdout.write(args.json ? `${JSON.stringify(report)}\n` : `${formatSummary(report)}\n`);
    return report.exitCode;
  } finally {
    progress?.clear();
    await services.close();
    redis.disconnect();
  }
}

main(process.argv.slice(2), withLocalClusterSettings(process.env, say)).then(
  (code) => {
    // Open sockets (S3, backends) must not keep a finished scan alive.
    process.stdout.write('', () => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`healer: scan failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
