import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfig } from './config.ts';

const base = {
  CRING_BACKENDS: 'a=http://127.0.0.1:1,b=http://127.0.0.1:2',
  CRING_ISSUER: 'http://localhost:35354',
  CRING_SERVER_KEY_FILE: '/keys/charm_server_ed25519',
  REDIS_URL: 'redis://127.0.0.1:6379',
  S3_BUCKET: 'backups',
  S3_ACCESS_KEY_ID: 'key',
  S3_SECRET_ACCESS_KEY: 'secret',
};

describe('replicator configuration', () => {
  it('serves every backend queue and S3 by default, account sync only with every agent', () => {
    const config = loadConfig(base);
    assert.deepEqual(config.servedBackends, ['a', 'b']);
    assert.equal(config.serveS3, true);
    assert.deepEqual(config.agents, []);
    const synced = loadConfig({ ...base, CRING_AGENTS: 'a=http://h1:35390,b=http://h2:35390' });
    assert.deepEqual(
      synced.agents.map((d) => d.name),
      ['a', 'b'],
    );
  });

  it('lists every problem: the bucket, a partial agent list, an unknown served backend', () => {
    assert.throws(
      () =>
        loadConfig({
          ...base,
          S3_BUCKET: '',
          CRING_AGENTS: 'a=http://h1:35390',
          CRING_REPLICATOR_BACKENDS: 'c',
        }),
      (err: Error) => /S3_BUCKET/.test(err.message),
    );
    assert.throws(
      () => loadConfig({ ...base, CRING_AGENTS: 'a=http://h1:35390', CRING_REPLICATOR_BACKENDS: 'c' }),
      (err: Error) => /missing: b/.test(err.message) && /c is not in CRING_BACKENDS/.test(err.message),
    );
  });
});
