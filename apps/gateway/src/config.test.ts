import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, it } from 'node:test';
import { loadConfig } from './config.ts';

const base = {
  CRING_BACKENDS: 'a=http://127.0.0.1:1,b=http://127.0.0.1:2,c=http://127.0.0.1:3',
  CRING_ISSUER: 'http://localhost:35354',
  REDIS_URL: 'redis://127.0.0.1:6379',
  CRING_SERVER_PUBLIC_KEY: openSshPublicKey(),
};

/** A well-formed `ssh-ed25519 AAAA…` line for some key. */
function openSshPublicKey(): string {
  const field = (bytes: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, bytes.length]), bytes]);
  const raw = Buffer.from(
    generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x as string,
    'base64url',
  );
  return `ssh-ed25519 ${Buffer.concat([field(Buffer.from('ssh-ed25519')), field(raw)]).toString('base64')}`;
}

describe('gateway configuration', () => {
  it('has working defaults: quorum 2 of 3, admin on loopback, 1 GiB uploads', () => {
    const config = loadConfig(base);
    assert.equal(config.writeQuorum, 2);
    assert.equal(config.replicationFactor, 3);
    assert.equal(config.admin.host, '127.0.0.1');
    assert.equal(config.admin.credentials, undefined);
    assert.equal(config.spool.maxUploadBytes, 1024 ** 3);
  });

  it('lists every problem in one error', () => {
    assert.throws(
      () => loadConfig({ CRING_HTTP_PORT: 'x' }),
      (err: Error) =>
        /CRING_BACKENDS/.test(err.message) &&
        /CRING_ISSUER/.test(err.message) &&
        /REDIS_URL/.test(err.message) &&
        /CRING_HTTP_PORT/.test(err.message),
    );
  });

  it('refuses an exposed admin port without credentials, and half-set credentials', () => {
    assert.throws(
      () => loadConfig({ ...base, CRING_ADMIN_HOST: '0.0.0.0' }),
      /set CRING_ADMIN_USER and CRING_ADMIN_PASSWORD/,
    );
    assert.throws(() => loadConfig({ ...base, CRING_ADMIN_USER: 'ops' }), /set both or neither/);
    const exposed = loadConfig({
      ...base,
      CRING_ADMIN_HOST: '0.0.0.0',
      CRING_ADMIN_USER: 'ops',
      CRING_ADMIN_PASSWORD: 'secret',
    });
    assert.deepEqual(exposed.admin.credentials, { user: 'ops', password: 'secret' });
  });

  it('reads the agents it asks for free space, and needs the cluster key to reach them', () => {
    assert.deepEqual(
      loadConfig(base).agents,
      [],
      'no agents: free space unknown, every backend counts as room',
    );
    const withAgents = { ...base, CRING_AGENTS: 'a=http://h1:35390,c=http://h3:35390' };
    assert.throws(() => loadConfig(withAgents), /CRING_AGENTS: reaching the agents needs the cluster key/);
    const config = loadConfig({ ...withAgents, CRING_SERVER_KEY_FILE: '/keys/charm_server_ed25519' });
    assert.deepEqual(
      config.agents.map((a) => a.name),
      ['a', 'c'],
    );
  });

  it('refuses a quorum the backends cannot reach', () => {
    assert.throws(
      () => loadConfig({ ...base, CRING_WRITE_QUORUM: '4' }),
      /must not exceed CRING_REPLICATION_FACTOR/,
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_BACKENDS: 'a=http://x:1' }),
      /needs at least that many backends/,
    );
  });

  it('has a safe default for every limit, and refuses limits that contradict each other', () => {
    const { limits, spool } = loadConfig(base);
    assert.deepEqual(limits, {
      headersTimeoutMs: 20_000,
      requestTimeoutMs: 30 * 60_000,
      idleTimeoutMs: 120_000,
      keepAliveTimeoutMs: 10_000,
      httpMaxConnections: 2_000,
      sshMaxConnections: 1_000,
      backendResponseDeadlineMs: 35 * 60_000,
    });
    assert.deepEqual(
      [spool.budgetBytes, spool.budgetWaitMs, spool.stallTimeoutMs],
      [8 * 1024 ** 3, 5_000, 20_000],
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_SPOOL_BUDGET_BYTES: String(1024 * 1024) }),
      /CRING_SPOOL_BUDGET_BYTES: must be at least CRING_MAX_UPLOAD_BYTES/,
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_UPLOAD_STALL_TIMEOUT_MS: '30000' }),
      /CRING_UPLOAD_STALL_TIMEOUT_MS: must be shorter than CRING_BACKEND_TIMEOUT_MS/,
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_HTTP_IDLE_TIMEOUT_MS: '60000' }),
      /CRING_HTTP_IDLE_TIMEOUT_MS: must be longer/,
    );
  });

  it('retries a refusal record for 60 s, the answer waiting 2 s of it, and refuses a wait past the horizon', () => {
    assert.deepEqual(loadConfig(base).refusalRecord, { horizonMs: 60_000, answerWaitMs: 2_000 });
    assert.throws(
      () =>
        loadConfig({
          ...base,
          CRING_REFUSAL_RECORD_HORIZON_MS: '1000',
          CRING_REFUSAL_RECORD_ANSWER_WAIT_MS: '2000',
        }),
      /CRING_REFUSAL_RECORD_ANSWER_WAIT_MS: must not exceed CRING_REFUSAL_RECORD_HORIZON_MS/,
    );
  });

  it('needs the cluster key from configuration, and checks a configured public key', () => {
    const { CRING_SERVER_PUBLIC_KEY: _, ...withoutKey } = base;
    assert.throws(
      () => loadConfig(withoutKey),
      /set one, so tokens are checked against the configured cluster key/,
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_SERVER_PUBLIC_KEY: 'ssh-rsa AAAAB3Nza' }),
      /CRING_SERVER_PUBLIC_KEY: expected "ssh-ed25519/,
    );
  });
});
