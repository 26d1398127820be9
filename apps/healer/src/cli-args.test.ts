import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCliArgs, UsageError } from './cli-args.ts';

const ID = '3f0c2a9e-1b2c-4d5e-8f90-123456789abc';

describe('parseCliArgs', () => {
  it('reads every option', () => {
    assert.deepEqual(
      parseCliArgs([
        '--scan',
        '--deep',
        '--dry-run',
        '--prune',
        '--json',
        '--no-wait',
        '--user',
        ID.toUpperCase(),
        '--max-requests-per-second',
        '50',
        '--wait-timeout-seconds=2.5',
      ]),
      {
        help: false,
        deep: true,
        dryRun: true,
        prune: true,
        resume: false,
        json: true,
        wait: false,
        user: ID,
        waitTimeoutMs: 2500,
        maxRequestsPerSecond: 50,
      },
    );
    const plain = parseCliArgs(['--scan', '--resume']);
    assert.equal(plain.wait, true, 'waits by default');
    assert.equal(plain.resume, true);
    assert.equal(plain.maxRequestsPerSecond, undefined, 'the config decides');
  });

  it('answers --help without --scan', () => {
    assert.equal(parseCliArgs(['--help']).help, true);
    assert.equal(parseCliArgs(['-h']).help, true);
  });

  it('refuses what it cannot do, saying what to change', () => {
    const cases: [string[], RegExp][] = [
      [['--scan', '--bogus'], /Unknown option '--bogus'.*--help/],
      [[], /pass --scan/],
      [['--scan', 'extra'], /positional/i],
      [['--scan', '--user'], /--user/],
      [['--scan', '--user', 'alice'], /charm_id/],
      [['--scan', '--user', ID, '--resume'], /--resume/],
      [['--scan', '--max-requests-per-second', '0'], /above 0/],
      [['--scan', '--max-requests-per-second', 'fast'], /above 0/],
      [['--scan', '--wait-timeout-seconds=-1'], /above 0/],
      [['--scan', '--wait-timeout-seconds', '-1'], /ambiguous/],
    ];
    for (const [argv, message] of cases) {
      assert.throws(
        () => parseCliArgs(argv),
        (err) => err instanceof UsageError && message.test(err.message),
        argv.join(' '),
      );
    }
  });
});
