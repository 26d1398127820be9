import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backendTarget, backendUrl, originFormTarget } from './backend-url.ts';

const backend = { name: 'b', httpUrl: 'http://10.0.0.5:35354', sshHost: '10.0.0.5', sshPort: 35353 };

describe('backend URLs', () => {
  it('accepts origin-form targets as they are', () => {
    for (const target of ['/', '/v1/fs/a.txt?mode=420', '/v1/fs//a/../b', '/v1/seq/a%2Fb'])
      assert.equal(originFormTarget(target), target);
  });

  it('refuses every target that is not a path, with a 400 saying so', () => {
    for (const target of [
      'http://169.254.169.254/latest/meta-data',
      'HTTPS://admin:35380/queues',
      '//127.0.0.1:35380/queues',
      '*',
      '127.0.0.1:6379',
      'v1/fs/a',
      '',
      '/v1/fs/a#frag',
      '/v1/fs/a b',
    ]) {
      assert.throws(() => originFormTarget(target), { statusCode: 400, message: /is not a path/ }, target);
    }
    assert.throws(() => originFormTarget(undefined), { statusCode: 400 });
  });

  it('always sends to the backend origin, whatever the path looks like', () => {
    assert.deepEqual(backendTarget(backend, '/v1/fs/a?mode=420'), {
      https: false,
      hostname: '10.0.0.5',
      port: 35354,
      host: '10.0.0.5:35354',
      path: '/v1/fs/a?mode=420',
    });
    assert.equal(backendUrl(backend, '/v1/public/jwks'), 'http://10.0.0.5:35354/v1/public/jwks');
    // A path that a URL parser would read as another authority never gets that far.
    assert.throws(() => backendTarget(backend, '//evil.example/x'), { statusCode: 400 });
    assert.throws(() => backendTarget(backend, 'http://evil.example/x'), { statusCode: 400 });
    const secure = backendTarget({ ...backend, httpUrl: 'https://[::1]' }, '/x');
    assert.deepEqual([secure.https, secure.hostname, secure.port, secure.host], [true, '::1', 443, '[::1]']);
  });
});
