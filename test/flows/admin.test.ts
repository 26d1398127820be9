import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { useCluster } from '../harness/cluster-fixture.ts';

describe('admin port', () => {
  it('Bull Board needs the configured credentials and shows every queue', async (t) => {
    const cluster = await useCluster(t, {
      appEnv: { CRING_ADMIN_USER: 'ops', CRING_ADMIN_PASSWORD: 'correct horse' },
    });
    const admin = `http://127.0.0.1:${cluster.gatewayPorts.adminPort}`;
    const basic = (user: string, password: string) =>
      `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

    const anonymous = await fetch(`${admin}/queues`);
    assert.equal(anonymous.status, 401);
    assert.match(anonymous.headers.get('www-authenticate') ?? '', /^Basic/);
    assert.equal(
      (await fetch(`${admin}/queues`, { headers: { authorization: basic('ops', 'wrong') } })).status,
      401,
    );
    assert.equal(
      (await fetch(`${admin}/status`, { headers: { authorization: basic('ops', 'wrong') } })).status,
      401,
    );

    const page = await fetch(`${admin}/queues`, {
      headers: { authorization: basic('ops', 'correct horse') },
    });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const api = await fetch(`${admin}/queues/api/queues`, {
      headers: { authorization: basic('ops', 'correct horse') },
    });
    assert.equal(api.status, 200);
    const names = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name).sort();
    assert.deepEqual(names, [
      'accounts',
      'backend-charm1',
      'backend-charm2',
      'backend-charm3',
      'healer',
      's3-backup',
    ]);
    assert.equal((await fetch(`${admin}/healthz`)).status, 200, 'liveness needs no credentials');

    const metrics = await fetch(`${admin}/metrics`, {
      headers: { authorization: basic('ops', 'correct horse') },
    });
    const text = await metrics.text();
    assert.match(text, /cring_backend_up\{backend="charm1",protocol="ssh",app="gateway"\} 1/);
    assert.match(text, /cring_queue_jobs\{queue="s3-backup",state="waiting",app="gateway"\} 0/);
    assert.match(text, /cring_http_requests_total\{route="\/queues\/api\/queues"|cring_http_requests_total/);
    assert.match(text, /cring_process_resident_memory_bytes/);
  });
});
