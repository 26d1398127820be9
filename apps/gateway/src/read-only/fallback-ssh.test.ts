import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadServerKey } from '@cring/charm';
import { createLogger } from '@cring/service-runtime';
import ssh2 from 'ssh2';
import type { AccountLookup } from './account-lookup.ts';
import { createFallbackSsh, rfc3339 } from './fallback-ssh.ts';

const dir = mkdtempSync(join(tmpdir(), 'cring-fallback-ssh-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keygen = (name: string) => {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', file]);
  return file;
};

describe('rfc3339', () => {
  it("turns every created_at form charm's SQLite holds into RFC 3339", () => {
    assert.equal(rfc3339('2026-11-25 08:51:01'), '2026-11-25T08:51:01Z');
    // What the server stores for a created_at the gateway stamped: Go's time.String().
    assert.equal(rfc3339('2026-11-25 09:12:17.895 +0000 UTC'), '2026-11-25T09:12:17.895+00:00');
    assert.equal(rfc3339('2026-11-25T09:12:17.895-05:00'), '2026-11-25T09:12:17.895-05:00');
    assert.equal(rfc3339(null), null);
  });
});

describe('read-only SSH answers', () => {
  it('api-auth names the scheme the gateway serves HTTP with (https behind TLS)', async () => {
    const serverKeyFile = keygen('server');
    const userKeyFile = keygen('user');
    const userPublicKey = readFileSync(`${userKeyFile}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
    const accounts = {
      userForKey: async (publicKey: string) =>
        publicKey === userPublicKey
          ? { charmId: 'user-1', keys: [{ publicKey, encryptKeys: [] }] }
          : undefined,
    } as unknown as AccountLookup;
    for (const httpScheme of ['https', 'http'] as const) {
      const fallback = createFallbackSsh({
        key: loadServerKey(serverKeyFile),
        hostKey: readFileSync(serverKeyFile),
        issuer: 'https://charm.test',
        httpScheme,
        accounts,
        logger: createLogger({ name: 'test', level: 'silent', pretty: false }),
      });
      const listener = createServer((socket) => fallback.accept(socket));
      listener.listen(0, '127.0.0.1');
      await once(listener, 'listening');
      const client = new ssh2.Client();
      try {
        const answer = await new Promise<string>((resolve, reject) => {
          client.once('error', reject);
          client.once('ready', () =>
            client.exec('api-auth', (err, channel) => {
              if (err) return reject(err);
              let out = '';
              channel.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
              channel.once('close', () => resolve(out));
            }),
          );
          client.connect({
            host: '127.0.0.1',
            port: (listener.address() as { port: number }).port,
            username: 'charm',
            privateKey: readFileSync(userKeyFile),
          });
        });
        const parsed = JSON.parse(answer) as { http_scheme: string; charm_id: string };
        assert.equal(parsed.charm_id, 'user-1');
        assert.equal(parsed.http_scheme, httpScheme);
      } finally {
        client.end();
        fallback.close();
        listener.close();
      }
    }
  });
});
