import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Backend, loadServerKey, mintCharmJwt, type ServerKey } from '@cring/charm';
import pino from 'pino';
import { createTokenVerifier, trustedClusterKey } from './token-verifier.ts';

const dir = mkdtempSync(join(tmpdir(), 'cring-verifier-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'charm_server_ed25519');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', keyFile]);
const key = loadServerKey(keyFile);
const issuer = 'http://charm.test:35354';
const verifier = createTokenVerifier({
  issuer,
  clusterKey: trustedClusterKey({ serverKeyFile: keyFile }),
  backends: [],
  logger: pino({ level: 'silent' }),
});

describe('token verifier', () => {
  it('accepts the cluster key and issuer, remembers a verified token only until it expires', async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = mintCharmJwt({ key, issuer, charmId: 'user-1', ttlSeconds: 2 });
    assert.deepEqual(verifier.verify(`bearer ${token}`), { charmId: 'user-1' });
    assert.deepEqual(verifier.verify(`Bearer ${token}`), { charmId: 'user-1' });
    const expired = mintCharmJwt({ key, issuer, charmId: 'user-1', nowSeconds: now - 3600, ttlSeconds: 60 });
    assert.throws(() => verifier.verify(`bearer ${expired}`), { statusCode: 401 });
    await new Promise((resolve) => setTimeout(resolve, 2100));
    assert.throws(
      () => verifier.verify(`bearer ${token}`),
      { statusCode: 401 },
      'a cached token is not valid past exp',
    );
  });

  it('refuses a token from another key even for a cached subject', () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const forged = mintCharmJwt({ key: { privateKey, publicKey, kid: key.kid }, issuer, charmId: 'user-1' });
    assert.throws(() => verifier.verify(`bearer ${forged}`), { statusCode: 401 });
    assert.throws(() => verifier.verify(undefined), { statusCode: 401 });
  });

  it('trusts only the configured key: a backend publishing another key in its JWKS is ignored', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const impostor: ServerKey = { privateKey, publicKey, kid: 'f'.repeat(64) };
    const jwksOf = (k: ServerKey) => ({
      keys: [
        { kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', kid: k.kid, x: k.publicKey.export({ format: 'jwk' }).x },
      ],
    });
    const serve = async (body: unknown): Promise<{ server: Server; backend: Backend }> => {
      const server = createServer((_req, res) => res.end(JSON.stringify(body)));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      return {
        server,
        backend: { name: `b${port}`, httpUrl: `http://127.0.0.1:${port}`, sshHost: '', sshPort: 1 },
      };
    };
    const lying = await serve(jwksOf(impostor));
    const honest = await serve(jwksOf(key));
    const publicOnly = createTokenVerifier({
      issuer,
      clusterKey: trustedClusterKey({ serverPublicKey: readFileSync(`${keyFile}.pub`, 'utf8') }),
      backends: [lying.backend, honest.backend],
      logger: pino({ level: 'silent' }),
      retryMs: 50,
    });
    try {
      await publicOnly.ready();
      const forged = mintCharmJwt({ key: impostor, issuer, charmId: 'user-2' });
      assert.throws(() => publicOnly.verify(`bearer ${forged}`), { statusCode: 401 });
      const real = mintCharmJwt({ key, issuer, charmId: 'user-2' });
      assert.deepEqual(publicOnly.verify(`bearer ${real}`), { charmId: 'user-2' });
      // The kid came from the honest backend's JWKS: a token naming another kid is refused.
      const otherKid = mintCharmJwt({ key: { ...key, kid: 'a'.repeat(64) }, issuer, charmId: 'user-2' });
      assert.throws(() => publicOnly.verify(`bearer ${otherKid}`), { statusCode: 401, message: /kid|key/ });
    } finally {
      publicOnly.close();
      lying.server.close();
      honest.server.close();
    }
  });

  it('refuses a configuration whose key file and public key differ, or that has neither', () => {
    const other = join(dir, 'other');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', other]);
    assert.throws(
      () =>
        trustedClusterKey({ serverKeyFile: keyFile, serverPublicKey: readFileSync(`${other}.pub`, 'utf8') }),
      /not the public key of CRING_SERVER_KEY_FILE/,
    );
    assert.throws(() => trustedClusterKey({}), /set CRING_SERVER_KEY_FILE or CRING_SERVER_PUBLIC_KEY/);
    const both = trustedClusterKey({
      serverKeyFile: keyFile,
      serverPublicKey: readFileSync(`${keyFile}.pub`, 'utf8'),
    });
    assert.equal(both.kid, key.kid);
  });
});
