import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadServerKey, mintCharmJwt } from '@cring/charm';
import pino from 'pino';
import { createTokenVerifier } from './token-verifier.ts';

const dir = mkdtempSync(join(tmpdir(), 'cring-verifier-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const keyFile = join(dir, 'charm_server_ed25519');
execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', keyFile]);
const key = loadServerKey(keyFile);
const issuer = 'http://charm.test:35354';
const verifier = createTokenVerifier({
  issuer,
  serverKeyFile: keyFile,
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
});
