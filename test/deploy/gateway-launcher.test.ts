// The gateway's process settings (V8 flags, glibc malloc thresholds) live in apps/gateway/bin/gateway; every way
// of starting the gateway must go through it, or what the bench measures is not what ships.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '@cring/local-cluster';
import { readCompose } from './compose-schema.ts';

const launcher = join(repoRoot, 'apps/gateway/bin/gateway');

/** Runs the launcher with NODE set to a script that prints what it was given, one line per argument. */
function launch(env: Record<string, string | undefined>, args: string[] = []) {
  const dir = mkdtempSync(join(tmpdir(), 'gateway-launcher-'));
  const fakeNode = join(dir, 'node');
  writeFileSync(
    fakeNode,
    '#!/bin/sh\necho "GLIBC_TUNABLES=$GLIBC_TUNABLES"\nfor a in "$@"; do echo "$a"; done\n',
  );
  chmodSync(fakeNode, 0o755);
  const { GLIBC_TUNABLES: _, ...inherited } = process.env;
  const out = execFileSync(launcher, args, {
    env: { ...inherited, ...env, NODE: fakeNode },
    encoding: 'utf8',
  });
  const [tunables, ...argv] = out.trimEnd().split('\n');
  return { tunables, argv };
}

describe('gateway launcher', () => {
  it('is how the Dockerfile and both compose files start the gateway', () => {
    assert.match(
      readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'),
      /^CMD \["apps\/gateway\/bin\/gateway"\]$/m,
    );
    for (const file of ['docker-compose.yml', 'deploy/compose/control-host.yml'])
      assert.deepEqual(
        readCompose(join(repoRoot, file)).services.gateway.command,
        ['apps/gateway/bin/gateway'],
        file,
      );
  });

  it('starts node with the V8 flags and the malloc thresholds, the caller arguments before the script', () => {
    const { tunables, argv } = launch({}, ['--permission', '--allow-fs-read=/x']);
    assert.equal(
      tunables,
      'GLIBC_TUNABLES=glibc.malloc.mmap_threshold=131072:glibc.malloc.trim_threshold=131072',
    );
    assert.deepEqual(argv, [
      '--max-semi-space-size=1',
      '--heap-growing-percent=100',
      '--permission',
      '--allow-fs-read=/x',
      `${repoRoot}/apps/gateway/bin/../src/main.ts`,
    ]);
  });

  it("leaves a deployment's own GLIBC_TUNABLES alone", () => {
    assert.equal(
      launch({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).tunables,
      'GLIBC_TUNABLES=glibc.malloc.arena_max=2',
    );
  });
});
