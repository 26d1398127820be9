import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { gatewayUrl, tokens, uploadBody } from '../harness/raw-http.ts';
import { clusterState, filesOnBackend, objectsInS3 } from '../harness/replicas.ts';

describe('gateway authentication', () => {
  it('refuses forged, foreign, expired and alg-none tokens with 401, and nothing changes anywhere', async (t) => {
    const cluster = await useCluster(t);
    const state = clusterState(cluster);
    t.after(() => state.close());
    const { charmId } = await newUser(cluster, 'victim');
    const mint = tokens(cluster);
    const { body, contentType } = uploadBody(Buffer.from('attacker data'));

    const snapshot = async () => ({
      backends: cluster.backends.map((_, i) => [...filesOnBackend(cluster, i, charmId)]),
      s3: [...(await objectsInS3(cluster, charmId))],
      // The victim's manifest keys with their contents, and every file job (account sync rounds tick on their own).
      manifest: await Promise.all(
        (await state.redis.keys(`cring:{${charmId}}:*`))
          .sort()
          .map(async (key) => [key, await state.redis.dump(key)]),
      ),
      jobs: (await state.redis.keys('{cring}:*'))
        .filter((key) => /^\{cring\}:(backend-|s3-backup)/.test(key))
        .sort(),
    });
    const before = await snapshot();

    const requests = (token: string) =>
      [
        { method: 'POST', path: '/v1/fs/owned.txt?mode=420', body, contentType },
        { method: 'DELETE', path: '/v1/fs/', body: undefined, contentType: undefined },
        {
          method: 'POST',
          path: '/v1/encrypt-key',
          body: Buffer.from('{"id":"x","key":"k","public_key":"p"}'),
          contentType: 'application/json',
        },
        { method: 'POST', path: '/v1/seq/x', body: Buffer.from('null'), contentType: 'application/json' },
        { method: 'GET', path: '/v1/fs/', body: undefined, contentType: undefined },
      ].map((r) => ({ ...r, token }));

    for (const [kind, token] of Object.entries(mint.forged(charmId))) {
      for (const request of requests(token)) {
        const response = await fetch(gatewayUrl(cluster, request.path), {
          method: request.method,
          headers: {
            authorization: `bearer ${token}`,
            ...(request.contentType ? { 'content-type': request.contentType } : {}),
          },
          body: request.body,
        });
        assert.equal(response.status, 401, `${kind}: ${request.method} ${request.path}`);
        assert.equal(response.headers.get('content-type'), 'application/json');
        const { message } = (await response.json()) as { message: string };
        assert.ok(message.length > 10, `${kind}: a message that says what is wrong (${message})`);
        assert.ok(!message.includes(token), 'the token is never echoed');
      }
    }
    const missing = await fetch(gatewayUrl(cluster, '/v1/fs/x'), { method: 'DELETE' });
    assert.equal(missing.status, 401);

    assert.deepEqual(await snapshot(), before, 'no backend, S3 object or Redis key changed');

    // The same request with a real token goes through, so the refusals above were about the tokens.
    const ok = await fetch(gatewayUrl(cluster, '/v1/fs/owned.txt?mode=420'), {
      method: 'POST',
      headers: { authorization: `bearer ${mint.valid(charmId)}`, 'content-type': contentType },
      body,
    });
    assert.equal(ok.status, 200);
    await state.waitForDrain(charmId);
    assert.equal(filesOnBackend(cluster, 0, charmId).size, 1);
  });
});
