import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { createLogger } from '@cring/service-runtime';
import { Registry } from 'prom-client';
import { buildAdminApp, sameSecret } from './admin-app.ts';

describe('admin credentials', () => {
  it('tells right from wrong, whatever the lengths', () => {
    assert.equal(sameSecret('correct horse', 'correct horse'), true);
    for (const guess of ['', 'c', 'correct hors', 'correct horse ', 'correct horsf', 'correct horse\0'])
      assert.equal(sameSecret(guess, 'correct horse'), false, JSON.stringify(guess));
  });

  it('compares the same number of bytes for every guess, so the time taken does not reveal the length', (t) => {
    const compare = t.mock.method(crypto, 'timingSafeEqual');
    for (const guess of ['', 'x', 'correct horse', 'a much longer guess than the secret itself'])
      sameSecret(guess, 'correct horse');
    assert.equal(compare.mock.callCount(), 4, 'a constant-time comparison runs even when the lengths differ');
    for (const call of compare.mock.calls) {
      const [a, b] = call.arguments as unknown as [Buffer, Buffer];
      assert.deepEqual([a.length, b.length], [32, 32]);
    }
  });
});

describe('Bull Board', () => {
  const loaded = (name: string) =>
    Object.keys(createRequire(import.meta.url).cache).filter((file) =>
      file.includes(`/node_modules/${name}/`),
    );
  const loadedBullBoard = () => loaded('@bull-board');
  const deps = {
    logger: createLogger({ name: 'admin-test', level: 'silent' }),
    queues: () => [],
    status: async () => ({}),
    metrics: new Registry(),
    openConnections: () => [],
  };

  it('is loaded on the first /queues request, not when the admin app starts', async (t) => {
    const app = await buildAdminApp({ ...deps, credentials: { user: 'ops', password: 'pw' } });
    t.after(() => app.close());
    assert.deepEqual(loadedBullBoard(), [], 'Bull Board loaded at start');
    assert.deepEqual(loaded('ajv'), [], 'the JSON schema compiler loaded for an app without schemas');
    const healthz = await app.inject('/healthz');
    assert.equal(healthz.statusCode, 200);
    assert.deepEqual(loadedBullBoard(), [], 'Bull Board loaded by another route');

    const refused = await app.inject('/queues');
    assert.equal(refused.statusCode, 401);
    assert.deepEqual(loadedBullBoard(), [], 'Bull Board loaded for a request without credentials');

    const authorization = `Basic ${Buffer.from('ops:pw').toString('base64')}`;
    const page = await app.inject({ url: '/queues', headers: { authorization } });
    assert.equal(page.statusCode, 200);
    assert.match(page.body, /<html/i);
    assert.notDeepEqual(loadedBullBoard(), []);
    const api = await app.inject({ url: '/queues/api/queues', headers: { authorization } });
    assert.equal(api.statusCode, 200);
    assert.deepEqual((api.json() as { queues: unknown[] }).queues, []);
    const missing = await app.inject({
      url: '/queues/api/queues/nope/retry/failed',
      method: 'PUT',
      headers: { authorization },
    });
    assert.equal(missing.statusCode, 404, "Bull Board's own answer for a queue it does not show");
  });
});
