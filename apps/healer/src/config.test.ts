import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig, retryHorizonMs } from './config.ts';

const env = {
  CRING_BACKENDS: 'charm1=http://127.0.0.1:1,charm2=http://127.0.0.1:2|h:22',
  CRING_ISSUER: 'http://127.0.0.1:35354',
  CRING_SERVER_KEY_FILE: '/key',
  REDIS_URL: 'redis://127.0.0.1:6379',
  S3_BUCKET: 'b',
  S3_ACCESS_KEY_ID: 'a',
  S3_SECRET_ACCESS_KEY: 's',
};

const problemsOf = (extra: Record<string, string | undefined>) => {
  try {
    loadConfig({ ...env, ...extra });
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err.problems.join('\n');
  }
  return '';
};

describe('loadConfig', () => {
  it('has gentle defaults', () => {
    const config = loadConfig(env);
    assert.deepEqual(
      config.backends.map((b) => b.name),
      ['charm1', 'charm2'],
    );
    assert.equal(config.replicationFactor, 3);
    assert.equal(config.maxRequestsPerSecond, 200);
    assert.equal(config.intervalMs, 3_600_000);
    assert.equal(config.tombstoneRetentionMs, 7 * 24 * 3600 * 1000);
    assert.equal(
      config.lostWriteGraceMs,
      10 * 60_000,
      'longer than the gateway refusal record horizon (60 s)',
    );
    assert.equal(config.scheduledDeep, false);
    assert.deepEqual(config.agents, []);
  });

  it('reads the backends data dirs, in configured order', () => {
    const config = loadConfig({ ...env, CRING_AGENTS: 'charm2=http://h2:1, charm1=http://h1:1' });
    assert.deepEqual(config.agents, [
      { name: 'charm1', url: 'http://h1:1' },
      { name: 'charm2', url: 'http://h2:1' },
    ]);
  });

  it('lists every bad key at once', () => {
    const problems = problemsOf({
      CRING_REPLICATION_FACTOR: 'three',
      REDIS_URL: undefined,
      CRING_HEALER_DEEP: 'yes',
    });
    assert.match(problems, /CRING_REPLICATION_FACTOR/);
    assert.match(problems, /REDIS_URL or REDIS_SENTINELS: required/);
    assert.match(problems, /CRING_HEALER_DEEP: expected "true" or "false"/);
    assert.match(problemsOf({ CRING_BACKENDS: 'nonsense' }), /CRING_BACKENDS/);
    assert.match(problemsOf({ CRING_AGENTS: 'charm9=http://x:1' }), /charm9 is not a backend/);
    assert.match(problemsOf({ CRING_AGENTS: '/x' }), /not name=http:\/\/host:port/);
  });

  it('keeps tombstones longer than the retry horizon plus the scan interval', () => {
    assert.ok(retryHorizonMs() > 2 * 3600 * 1000 && retryHorizonMs() < 2.5 * 3600 * 1000, 'about 2.3 h');
    assert.equal(retryHorizonMs({ attempts: 3, backoff: { type: 'exponential', delay: 1000 } }), 7000);
    assert.equal(retryHorizonMs({ attempts: 3, backoff: 500 }), 1500);
    assert.match(problemsOf({ CRING_TOMBSTONE_RETENTION_MS: String(3 * 3600 * 1000) }), /retry horizon/);
    assert.match(
      problemsOf({
        CRING_TOMBSTONE_RETENTION_MS: String(24 * 3600 * 1000),
        CRING_HEALER_INTERVAL_MS: String(23 * 3600 * 1000),
      }),
      /CRING_TOMBSTONE_RETENTION_MS/,
    );
    assert.equal(problemsOf({ CRING_TOMBSTONE_RETENTION_MS: String(24 * 3600 * 1000) }), '');
  });
});
