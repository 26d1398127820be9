import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { backendsFrom, dataDirsFrom, s3From, sharedEnvFields } from './shared-env.ts';

const parse = (env: Record<string, string>) => z.object(sharedEnvFields).parse(env);

describe('shared settings', () => {
  it('reads backends, data dirs in configured order, and S3 settings', () => {
    const env = parse({
      CRING_BACKENDS: 'a=http://a:1,b=http://b:1',
      CRING_BACKEND_DATA_DIRS: 'b=/data/b, a=/data/a',
      S3_BUCKET: 'bucket',
      S3_ACCESS_KEY_ID: 'key',
      S3_SECRET_ACCESS_KEY: 'secret',
    });
    const problems: string[] = [];
    const backends = backendsFrom(env, problems);
    assert.deepEqual(dataDirsFrom(env, backends, problems, { all: true }), [
      { name: 'a', dataDir: '/data/a' },
      { name: 'b', dataDir: '/data/b' },
    ]);
    assert.deepEqual(s3From(env, problems, { required: true }), {
      endpoint: undefined,
      region: 'us-east-1',
      bucket: 'bucket',
      accessKeyId: 'key',
      secretAccessKey: 'secret',
      forcePathStyle: true,
    });
    assert.deepEqual(problems, []);
  });

  it('says what is wrong with each setting', () => {
    const problems: string[] = [];
    const env = parse({
      CRING_BACKENDS: 'a=http://a:1,b=http://b:1',
      CRING_BACKEND_DATA_DIRS: 'a=/d,c=/e,nonsense',
      S3_BUCKET: 'x',
    });
    const backends = backendsFrom(env, problems);
    dataDirsFrom(env, backends, problems, { all: true });
    assert.equal(s3From(env, problems, { required: false }), undefined);
    assert.equal(s3From(parse({ CRING_BACKENDS: 'a=http://a:1' }), problems, { required: false }), undefined);
    backendsFrom({ CRING_BACKENDS: '' }, problems);
    assert.deepEqual(problems, [
      'CRING_BACKEND_DATA_DIRS: c is not a backend of CRING_BACKENDS',
      'CRING_BACKEND_DATA_DIRS: "nonsense" is not name=/data/dir',
      "CRING_BACKEND_DATA_DIRS: every backend's data dir is needed (missing: b)",
      'S3_BUCKET, S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY: required together (the backup bucket and its credentials)',
      'CRING_BACKENDS: no backends: expected name=httpUrl[|sshHost:sshPort], comma-separated',
    ]);
  });
});
