import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { withLocalClusterSettings } from './local-cluster-settings.ts';

const appEnv = { CRING_BACKENDS: 'a=http://127.0.0.1:1', REDIS_URL: 'redis://127.0.0.1:2' };

function topologyFile(launcherPid: number): string {
  const file = join(mkdtempSync(join(tmpdir(), 'cring-topology-')), 'cluster.json');
  writeFileSync(file, JSON.stringify({ launcherPid, appEnv }));
  return file;
}

function run(env: NodeJS.ProcessEnv, file: string) {
  const said: string[] = [];
  return { env: withLocalClusterSettings(env, (line) => said.push(line), file), said };
}

describe('the local cluster settings fallback', () => {
  it("takes a running local cluster's settings when the environment names no cluster, and says so", () => {
    const { env, said } = run({ PATH: '/bin', CRING_CACHE_DIR: '/cache' }, topologyFile(process.pid));
    assert.equal(env.CRING_BACKENDS, appEnv.CRING_BACKENDS);
    assert.equal(env.REDIS_URL, appEnv.REDIS_URL);
    assert.equal(env.PATH, '/bin');
    assert.equal(said.length, 1);
    assert.match(said[0] ?? '', /using the local cluster's settings from .*cluster\.json/);
  });

  it('uses the environment alone when it names a cluster', () => {
    const given = { REDIS_URL: 'redis://elsewhere:6379' };
    const { env, said } = run(given, topologyFile(process.pid));
    assert.equal(env, given);
    assert.deepEqual(said, []);
  });

  it('ignores the topology of a cluster whose launcher is gone', () => {
    const given = { PATH: '/bin' };
    // Pid 2^22 + 1 is above Linux's pid_max limit, so no process can have it.
    const { env, said } = run(given, topologyFile(4_194_305));
    assert.equal(env, given);
    assert.match(said[0] ?? '', /not running/);
  });

  it('leaves the environment as given when there is no topology file', () => {
    const given = { PATH: '/bin' };
    const { env, said } = run(given, join(tmpdir(), 'no-such-dir', 'cluster.json'));
    assert.equal(env, given);
    assert.deepEqual(said, []);
  });
});
