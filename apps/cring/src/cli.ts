#!/usr/bin/env node
// cring: the operators' commands. Exit codes: 0 done, 1 failed, 2 usage or configuration error.
import { parseArgs } from 'node:util';
import { withLocalClusterSettings } from '@cring/config';
import { initBackend } from './commands/init-backend.ts';
import { restoreTree } from './commands/restore.ts';
import { restoreAccounts } from './commands/restore-accounts.ts';
import { collectStatus, formatStatus } from './commands/status.ts';
import { loadConfig, UsageError } from './config.ts';

const USAGE = `usage: cring <command> [options]

commands:
  status [--json]                                  backends' health, account primary, queues, repairs, last scan
  init-backend --from <name> --to <name>           prepare a new backend's data dir (server key, accounts)
  restore-accounts --backend <name> [--from <name>] [--force]
                                                   restore a backend's account DB from the S3 backup
  restore --user <charm id> [--path <P>] --at <time> [--apply]
                                                   bring a user's files (or P and below) back to what the S3
                                                   backup held at <time> (ISO-8601 with a zone, or relative:
                                                   --at=-90s, -15m, -2h, -3d); a dry run that prints the plan
                                                   unless --apply

configuration comes from the environment, as for the other processes:
  CRING_BACKENDS, CRING_AGENTS, CRING_ISSUER, CRING_SERVER_KEY_FILE, REDIS_URL, S3_ENDPOINT, S3_BUCKET, S3_ACCESS_KEY_ID,
  S3_SECRET_ACCESS_KEY
  (when none of CRING_*, REDIS_URL or S3_* is set: those of the local cluster \`npm run dev\` runs from this checkout)`;

async function main(argv: string[]): Promise<string> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      from: { type: 'string' },
      to: { type: 'string' },
      backend: { type: 'string' },
      force: { type: 'boolean', default: false },
      user: { type: 'string' },
      path: { type: 'string' },
      at: { type: 'string' },
      apply: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
      json: { type: 'boolean', default: false },
    },
  });
  const command = positionals[0];
  if (values.help || !command) return USAGE;
  const say = (line: string) => console.error(`cring: ${line}`);
  const config = loadConfig(withLocalClusterSettings(process.env, say));
  switch (command) {
    case 'status': {
      const status = await collectStatus(config);
      return values.json ? JSON.stringify(status, null, 2) : formatStatus(status);
    }
    case 'init-backend':
      return await initBackend(config, values.from, values.to);
    case 'restore-accounts':
      return await restoreAccounts(config, {
        backend: values.backend,
        from: values.from,
        force: values.force ?? false,
      });
    case 'restore':
      return await restoreTree(
        config,
        { user: values.user, path: values.path, at: values.at, apply: values.apply ?? false },
        (line) => console.log(line),
      );
    default:
      throw new UsageError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (output) => console.log(output),
  (err: unknown) => {
    const usage = err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
    console.error(`cring: ${(err as Error).message}`);
    process.exit(usage ? 2 : 1);
  },
);
