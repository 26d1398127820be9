import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { agentsFrom, backendsFrom, s3From, sharedEnvFields } from './shared-env.ts';

const parse = (env: Record<string, string>) => z.object(sharedEnvFields).parse(env);

describe('shared settings', () => {
  it('reads backends, agents in configured order, and S3 settings', () => {
    const env = parse({
      CRING_BACKENDS: 'a=http://a:1,b=http://b:1',
      CRING_AGENTS: 'b=http://h2:35390, a=http://h1:35390/',
      S3_BUCKET: 'bucket',
      S3_ACCESS_KEY_ID: 'key',
      S3_SECRET_ACCESS_KEY: 'secret',
    });
    const problems: string[] = [];
    const backends = backendsFrom(env, problems);
    assert.deepEqual(agentsFrom(env, backends, problems, { all: true }), [
      { name: 'a', url: 'http://h1:35390' },
      { name: 'b', url: 'http://h2:35390' },
    ]);
    assert.deepEqual(s3From(env, problems, { required: true }), {
      endpoint: undefined,
      region: 'us-east-1',
      bucket: 'bucket',
      accessKeyId: 'key',
      secretAccessKey: 'secret',
      forcePathStyle: true,
      allowUnversioned: false,
      retentionDays: undefined,
    });
    assert.deepEqual(problems, []);
  });

  it('reads the versioning override and the retention, and refuses bad values', () => {
    const base = {
      CRING_BACKENDS: 'a=http://a:1',
      S3_BUCKET: 'b',
      S3_ACCESS_KEY_ID: 'k',
      S3_SECRET_ACCESS_KEY: 's',
    };
    const env = parse({ ...base, CRING_S3_ALLOW_UNVERSIONED: 'true', CRING_S3_RETENTION_DAYS: '30' });
    const settings = s3From(env, [], { required: true });
    assert.equal(settings?.allowUnversioned, true);
    assert.equal(settings?.retentionDays, 30);
    for (const bad of [
      { CRING_S3_ALLOW_UNVERSIONED: 'yes' },
      { CRING_S3_RETENTION_DAYS: '0' },
      { CRING_S3_RETENTION_DAYS: '1.5' },
    ]) {
      assert.equal(
        z.object(sharedEnvFields).safeParse({ ...base, ...bad }).success,
        false,
        JSON.stringify(bad),
      );
    }
  });

  it('refuses the old CRING_BACKEND_DATA_DIRS with a pointer to CRING_AGENTS', () => {
    const parsed = z
      .object(sharedEnvFields)
      .safeParse({ CRING_BACKENDS: 'a=http://a:1', CRING_BACKEND_DATA_DIRS: 'a=/d' });
    assert.equal(parsed.success, false);
    assert.match(String(parsed.error?.issues[0]?.message), /CRING_AGENTS/);
  });

  it('says what is wrong with each setting', () => {
    const problems: string[] = [];
    const env = parse({
      CRING_BACKENDS: 'a=http://a:1,b=http://b:1',
      CRING_AGENTS: 'a=http://h1:1,c=http://h3:1,nonsense,b=/data/b',
      S3_BUCKET: 'x',
    });
    const backends = backendsFrom(env, problems);
    agentsFrom(env, backends, problems, { all: true });
    assert.equal(s3From(env, problems, { required: false }), undefined);
    assert.equal(s3From(parse({ CRING_BACKENDS: 'a=http://a:1' }), problems, { required: false }), undefined);
    backendsFrom({ CRING_BACKENDS: '' }, problems);
    assert.deepEqual(problems, [
      'CRING_AGENTS: c is not a backend of CRING_BACKENDS',
      'CRING_AGENTS: "nonsense" is not name=http://host:port',
      'CRING_AGENTS: "b=/data/b" is not name=http://host:port',
      "CRING_AGENTS: every backend's agent is needed (missing: b)",
      'S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: required together (the backup bucket and its credentials)',
      'CRING_BACKENDS: no backends: expected name=httpUrl[|sshHost:sshPort], comma-separated',
    ]);
  });
});
