import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { describeRedis, missingRedis, redisEnvFields, redisFrom } from './redis.ts';

const parse = (env: Record<string, string>) => z.object(redisEnvFields).parse(env);

describe('Redis settings', () => {
  it('one Redis: no replica to wait for unless asked; the password never shows', () => {
    const problems: string[] = [];
    const settings = redisFrom(parse({ REDIS_URL: 'redis://:secret@10.0.0.5:6379' }), problems, {
      required: true,
    });
    assert.deepEqual(problems, []);
    assert.deepEqual(settings?.replicaWait, { replicas: 0, timeoutMs: 1000 });
    assert.equal(settings && describeRedis(settings), 'redis://:***@10.0.0.5:6379');
  });

  it('Sentinel: every sentinel, the master name, and commits wait for one replica by default', () => {
    const problems: string[] = [];
    const settings = redisFrom(
      parse({
        REDIS_SENTINELS: 'h1:26379, h2:26379,h3:26380',
        REDIS_SENTINEL_MASTER: 'ring',
        CRING_REDIS_WAIT_MS: '500',
      }),
      problems,
      { required: true },
    );
    assert.deepEqual(problems, []);
    assert.deepEqual(settings?.sentinels, [
      { host: 'h1', port: 26379 },
      { host: 'h2', port: 26379 },
      { host: 'h3', port: 26380 },
    ]);
    assert.equal(settings?.masterName, 'ring');
    assert.deepEqual(settings?.replicaWait, { replicas: 1, timeoutMs: 500 });
  });

  it('says what is wrong', () => {
    const problems: string[] = [];
    redisFrom(parse({ REDIS_URL: 'redis://a:1', REDIS_SENTINELS: 'h:1' }), problems, { required: true });
    redisFrom(parse({ REDIS_SENTINELS: 'h1,h2:99999' }), problems, { required: true });
    assert.equal(redisFrom(parse({}), problems, { required: false }), undefined);
    redisFrom(parse({}), problems, { required: true });
    assert.deepEqual(problems, [
      'REDIS_URL and REDIS_SENTINELS: set one (a single Redis, or sentinels that find the primary)',
      'REDIS_SENTINELS: "h1" is not host:port',
      'REDIS_SENTINELS: "h2:99999" is not host:port',
      'REDIS_SENTINELS: no sentinel listed',
      'REDIS_URL or REDIS_SENTINELS: required (e.g. redis://127.0.0.1:6379, or host:26379,… for Sentinel)',
    ]);
    assert.deepEqual(missingRedis({}), [problems.at(-1)]);
    assert.deepEqual(missingRedis({ REDIS_SENTINELS: 'h:1' }), []);
  });
});
