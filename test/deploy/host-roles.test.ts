// The per-role compose files for several hosts (deploy/compose/): valid Compose, and wired so that no central
// service touches a backend's data, every backend's data is reached by its own agent only, and Redis is found
// through three sentinels.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '@cring/local-cluster';
import { composeValidator, readCompose, variablesOf } from './compose-schema.ts';

const dir = join(repoRoot, 'deploy', 'compose');
const files = ['backend-host.yml', 'redis-node.yml', 'control-host.yml'];
const read = (name: string) => readCompose(join(dir, name));

describe('compose files per host role', () => {
  it('are valid against the Compose specification schema', () => {
    const validate = composeValidator();
    for (const name of files)
      assert.ok(validate(read(name)), `${name}: ${JSON.stringify(validate.errors, null, 2)}`);
  });

  it('backend host: the data volume is mounted by the charm server, its agent and the key installer only', () => {
    const backend = read('backend-host.yml');
    assert.equal(backend.services.charm.image, 'charmcli/charm:v0.12.6');
    const mounting = Object.entries(backend.services as Record<string, { volumes?: string[] }>)
      .filter(([, s]) => (s.volumes ?? []).some((v) => v.startsWith('charm-data:')))
      .map(([name]) => name);
    assert.deepEqual(mounting.sort(), ['agent', 'charm', 'server-key']);
    assert.equal(backend.services.agent.environment.CRING_AGENT_DATA_DIR, '/data');
    for (const name of ['charm', 'agent'])
      assert.equal(
        backend.services[name].depends_on['server-key'].condition,
        'service_completed_successfully',
      );
    // Private ports only: every published port names the host's private address.
    for (const name of ['charm', 'agent'])
      for (const port of backend.services[name].ports as string[]) assert.match(port, /^\$\{PRIVATE_IP/);
  });

  it("backend host: the server's TMPDIR is a volume its agent sweeps, in the server's PID namespace", () => {
    const backend = read('backend-host.yml');
    assert.equal(backend.services.charm.environment.TMPDIR, '/charm-tmp');
    for (const name of ['charm', 'agent'])
      assert.ok(backend.services[name].volumes.includes('charm-tmp:/charm-tmp'), `${name} mounts it`);
    assert.equal(backend.services.agent.environment.CRING_AGENT_SERVER_TMP_DIR, '/charm-tmp');
    assert.equal(backend.services.agent.pid, 'service:charm');
  });

  it('control host: no backend volume, agents and sentinels for everything, the key as a secret', () => {
    const control = read('control-host.yml');
    assert.deepEqual(Object.keys(control.volumes), ['gateway-spool']);
    for (const name of ['gateway', 'replicator', 'healer']) {
      const service = control.services[name];
      const env = service.environment;
      assert.match(env.CRING_AGENTS, /CRING_AGENTS/);
      assert.match(env.REDIS_SENTINELS, /REDIS_SENTINELS/);
      assert.equal(env.REDIS_URL, undefined);
      assert.equal(env.CRING_BACKEND_DATA_DIRS, undefined);
      assert.equal(env.CRING_SERVER_KEY_FILE, '/run/secrets/cluster_key');
      assert.deepEqual(service.secrets, ['cluster_key']);
      for (const volume of service.volumes ?? []) assert.match(volume, /^gateway-spool:/);
    }
    const admin = (control.services.gateway.ports as string[]).filter((p) => p.endsWith(':35380'));
    assert.match(admin[0] as string, /^127\.0\.0\.1:/);
  });

  it('redis node: durable Redis and a sentinel monitoring the primary with a quorum of 2', () => {
    const node = read('redis-node.yml');
    const redis = node.services.redis.command.join(' ');
    assert.match(redis, /--appendonly yes/);
    assert.match(redis, /--maxmemory-policy noeviction/);
    assert.match(node.services.sentinel.command.join(' '), /sentinel monitor cring \S+ 6379 2/);
  });

  it('documents every variable they read in hosts.env.example, and the example names three of everything', () => {
    const example = readFileSync(join(dir, 'hosts.env.example'), 'utf8');
    for (const name of files)
      for (const variable of variablesOf(join(dir, name)))
        assert.match(
          example,
          new RegExp(`^${variable}=`, 'm'),
          `${variable} (${name}) is in hosts.env.example`,
        );
    const value = (key: string) => example.match(new RegExp(`^${key}=(.*)$`, 'm'))?.[1] ?? '';
    assert.equal(value('CRING_AGENTS').split(',').length, 3);
    assert.equal(value('REDIS_SENTINELS').split(',').length, 3);
    assert.equal(value('CRING_BACKENDS').split(',').length, 3);
  });
});
