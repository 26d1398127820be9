// No Docker engine runs here, so the compose file is checked against the Compose specification's JSON schema
// and for the wiring the product depends on.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '@cring/local-cluster';
import { composeValidator, readCompose } from './compose-schema.ts';

const compose = readCompose(join(repoRoot, 'docker-compose.yml'));

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification schema', () => {
    const validate = composeValidator();
    const valid = validate(compose);
    assert.ok(valid, JSON.stringify(validate.errors, null, 2));
  });

  it('runs three charm servers of the tested version that share one server key', () => {
    const backends = ['charm1', 'charm2', 'charm3'].map((name) => compose.services[name]);
    for (const backend of backends) {
      assert.equal(backend.image, 'charmcli/charm:v0.12.6');
      assert.equal(backend.depends_on['server-key'].condition, 'service_completed_successfully');
      assert.ok(backend.environment.CHARM_SERVER_PUBLIC_URL, 'a shared issuer');
    }
    const keyInit = compose.services['server-key'].volumes as string[];
    for (const name of ['charm1', 'charm2', 'charm3']) {
      assert.ok(keyInit.includes(`${name}-data:/data/${name}`), `server-key writes into ${name}'s volume`);
      assert.ok(compose.services[name].volumes.includes(`${name}-data:/data`));
    }
  });

  it("gives each server a TMPDIR on a volume its agent sweeps, and the agent only that backend's volumes", () => {
    for (const [i, name] of ['charm1', 'charm2', 'charm3'].entries()) {
      const server = compose.services[name];
      const agent = compose.services[`agent${i + 1}`];
      assert.equal(server.environment.TMPDIR, '/charm-tmp');
      assert.ok(server.volumes.includes(`${name}-tmp:/charm-tmp`), `${name}'s TMPDIR is a volume`);
      assert.equal(agent.environment.CRING_AGENT_BACKEND, name);
      assert.equal(agent.environment.CRING_AGENT_SERVER_TMP_DIR, '/charm-tmp');
      assert.deepEqual(agent.volumes, [`${name}-data:/data`, `${name}-tmp:/charm-tmp`]);
      assert.equal(agent.pid, `service:${name}`, 'sees which temp files the server holds open');
    }
  });

  it('keeps Redis durable and the admin port on loopback', () => {
    const redis = compose.services.redis.command.join(' ');
    assert.match(redis, /--appendonly yes/);
    assert.match(redis, /--maxmemory-policy noeviction/);
    const adminPorts = (compose.services.gateway.ports as string[]).filter((p) => p.endsWith(':35380'));
    assert.deepEqual(adminPorts.length, 1);
    assert.match(adminPorts[0] as string, /^127\.0\.0\.1:/);
  });

  it('starts in order: health checks and depends_on conditions, named volumes only', () => {
    for (const name of ['redis', 'minio', 'gateway'])
      assert.ok(compose.services[name].healthcheck, `${name} has a health check`);
    for (const name of ['gateway', 'replicator', 'healer']) {
      const deps = compose.services[name].depends_on;
      assert.equal(deps.redis.condition, 'service_healthy', `${name} waits for Redis`);
      assert.equal(
        deps['server-key'].condition,
        'service_completed_successfully',
        `${name} waits for the key`,
      );
      assert.equal(
        deps['minio-bucket'].condition,
        'service_completed_successfully',
        `${name} waits for the bucket`,
      );
    }
    for (const [name, service] of Object.entries(
      compose.services as Record<string, { volumes?: string[] }>,
    )) {
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0] as string;
        assert.ok(source in compose.volumes, `${name} mounts the named volume ${source}, not a host path`);
      }
    }
  });

  it('each backend volume is mounted by its charm server and its agent only; central services reach agents', () => {
    for (const [i, name] of ['charm1', 'charm2', 'charm3'].entries()) {
      const mounting = Object.entries(compose.services as Record<string, { volumes?: string[] }>)
        .filter(([, service]) => (service.volumes ?? []).some((v) => v.startsWith(`${name}-data:`)))
        .map(([service]) => service)
        .filter((service) => service !== 'server-key');
      assert.deepEqual(mounting.sort(), [name, `agent${i + 1}`].sort(), `${name}-data`);
      assert.equal(compose.services[`agent${i + 1}`].environment.CRING_AGENT_BACKEND, name);
    }
    for (const name of ['gateway', 'replicator', 'healer']) {
      const service = compose.services[name];
      assert.equal(service.environment.CRING_BACKEND_DATA_DIRS, undefined);
      assert.equal(
        service.environment.CRING_AGENTS,
        'charm1=http://agent1:35390,charm2=http://agent2:35390,charm3=http://agent3:35390',
      );
      assert.equal(service.environment.CRING_SERVER_KEY_FILE, '/cluster-key/charm_server_ed25519');
      assert.ok(service.volumes.some((v: string) => v.startsWith('cluster-key:/cluster-key')));
    }
  });

  it('documents every variable it reads in .env.example', () => {
    const text = readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8');
    const example = readFileSync(join(repoRoot, '.env.example'), 'utf8');
    const used = new Set([...text.matchAll(/\$\{([A-Z0-9_]+)/g)].map((m) => m[1] as string));
    assert.ok(used.size > 5);
    for (const name of used)
      assert.match(example, new RegExp(`^${name}=`, 'm'), `${name} is in .env.example`);
  });

  it('names every backend the gateway uses', () => {
    const backends = compose.services.gateway.environment.CRING_BACKENDS as string;
    for (const name of ['charm1', 'charm2', 'charm3'])
      assert.match(backends, new RegExp(`${name}=http://${name}:35354`));
  });
});
