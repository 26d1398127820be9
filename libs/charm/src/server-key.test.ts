import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, generateKeyPairSync, sign, verify } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadServerKey, parseOpenSshPublicKey, parseServerKey, publicKeyFromJwks } from './server-key.ts';

let dir: string;

function sshKeygen(name: string, args: string[]): string {
  const file = join(dir, name);
  execFileSync('ssh-keygen', ['-q', '-C', '', '-f', file, ...args]);
  return file;
}

/** The 32-byte public key from an OpenSSH `.pub` line, decoded independently of the code under test. */
function publicKeyFromPubFile(file: string): Buffer {
  const blob = Buffer.from(readFileSync(file, 'utf8').split(' ')[1] as string, 'base64');
  return blob.subarray(blob.length - 32);
}

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'cring-server-key-'));
});

after(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('parseServerKey', () => {
  it('reads an ssh-keygen ed25519 key and computes the kid the charm server uses', () => {
    const file = sshKeygen('ed', ['-t', 'ed25519', '-N', '']);
    const key = parseServerKey(readFileSync(file, 'utf8'));

    const publicKeyBytes = publicKeyFromPubFile(`${file}.pub`);
    assert.deepEqual(
      Buffer.from(key.publicKey.export({ format: 'jwk' }).x as string, 'base64url'),
      publicKeyBytes,
    );
    // kid = sha256(seed ‖ public key); the seed comes from the PKCS#8 export (its last 32 bytes).
    const seed = key.privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(-32);
    const expectedKid = createHash('sha256')
      .update(Buffer.concat([seed, publicKeyBytes]))
      .digest('hex');
    assert.equal(key.kid, expectedKid);
    assert.match(key.kid, /^[0-9a-f]{64}$/);

    const message = Buffer.from('hello');
    assert.equal(verify(null, message, key.publicKey, sign(null, message, key.privateKey)), true);
  });

  it('refuses an encrypted key, saying how to fix it', () => {
    const file = sshKeygen('encrypted', ['-t', 'ed25519', '-N', 'secret']);
    assert.throws(() => parseServerKey(readFileSync(file, 'utf8')), /encrypted.*ssh-keygen -p/);
  });

  it('refuses other key types', () => {
    const file = sshKeygen('ecdsa', ['-t', 'ecdsa', '-N', '']);
    assert.throws(
      () => parseServerKey(readFileSync(file, 'utf8')),
      /ecdsa-sha2-nistp256, expected ssh-ed25519/,
    );
    const pkcs8 = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' });
    assert.throws(() => parseServerKey(pkcs8 as string), /found a "PRIVATE KEY" block/);
  });

  it('refuses garbage', () => {
    assert.throws(() => parseServerKey(''), /not a PEM file/);
    assert.throws(() => parseServerKey('hello'), /not a PEM file/);
    const pem = (body: string) =>
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${body}\n-----END OPENSSH PRIVATE KEY-----\n`;
    assert.throws(() => parseServerKey(pem('!!!')), /not valid base64/);
    assert.throws(
      () => parseServerKey(pem(Buffer.from('something else').toString('base64'))),
      /openssh-key-v1/,
    );
    const valid = readFileSync(sshKeygen('truncated', ['-t', 'ed25519', '-N', '']), 'utf8');
    const body = valid.split('\n').slice(1, -2).join('');
    assert.throws(() => parseServerKey(pem(body.slice(0, 120))), /truncated/);
  });

  it('refuses a key whose private part does not carry its public key', () => {
    const valid = readFileSync(sshKeygen('corrupt', ['-t', 'ed25519', '-N', '']), 'utf8');
    const raw = Buffer.from(valid.split('\n').slice(1, -2).join(''), 'base64');
    // The last bytes before the comment and padding belong to the private key's public half.
    const publicKeyBytes = raw.subarray(62, 94);
    const at = raw.lastIndexOf(publicKeyBytes);
    raw[at + 5] = (raw[at + 5] as number) ^ 0xff;
    const pem = `-----BEGIN OPENSSH PRIVATE KEY-----\n${raw.toString('base64')}\n-----END OPENSSH PRIVATE KEY-----\n`;
    assert.throws(() => parseServerKey(pem), /does not carry its public key/);
  });
});

describe('loadServerKey', () => {
  it('names the file in its errors', () => {
    const missing = join(dir, 'nope');
    assert.throws(
      () => loadServerKey(missing),
      (err: Error) => err.message.includes(missing),
    );
    const bad = join(dir, 'bad');
    writeFileSync(bad, 'not a key');
    assert.throws(() => loadServerKey(bad), /bad charm server key .*bad: not a PEM file/);
  });

  it('loads a key file', () => {
    const file = sshKeygen('loaded', ['-t', 'ed25519', '-N', '']);
    assert.equal(loadServerKey(file).kid, parseServerKey(readFileSync(file, 'utf8')).kid);
  });
});

describe('publicKeyFromJwks', () => {
  it('reads the key and kid the server publishes', () => {
    const key = parseServerKey(readFileSync(sshKeygen('jwks', ['-t', 'ed25519', '-N', '']), 'utf8'));
    const x = key.publicKey.export({ format: 'jwk' }).x as string;
    const jwks = { keys: [{ kty: 'OKP', kid: key.kid, crv: 'Ed25519', alg: 'EdDSA', x }] };
    const result = publicKeyFromJwks(JSON.parse(JSON.stringify(jwks)));
    assert.equal(result.kid, key.kid);
    assert.equal(result.publicKey.equals(key.publicKey), true);
  });

  it('refuses what is not one usable Ed25519 key', () => {
    const x = Buffer.alloc(32, 1).toString('base64url');
    assert.throws(() => publicKeyFromJwks(null), /not a JWKS/);
    assert.throws(() => publicKeyFromJwks({ keys: [] }), /0 Ed25519 keys/);
    assert.throws(() => publicKeyFromJwks({ keys: [{ kty: 'RSA', n: 'x', e: 'AQAB' }] }), /0 Ed25519 keys/);
    const okp = { kty: 'OKP', crv: 'Ed25519', kid: 'k', x };
    assert.throws(() => publicKeyFromJwks({ keys: [okp, okp] }), /2 Ed25519 keys/);
    assert.throws(() => publicKeyFromJwks({ keys: [{ ...okp, alg: 'ES256' }] }), /not EdDSA/);
    assert.throws(() => publicKeyFromJwks({ keys: [{ ...okp, kid: undefined }] }), /no kid/);
    assert.throws(() => publicKeyFromJwks({ keys: [{ ...okp, x: 'AAAA' }] }), /no valid "x"/);
  });

  it('reads the public key line of the .pub file, and refuses anything else', () => {
    const file = sshKeygen('pub', ['-t', 'ed25519', '-N', '']);
    const key = loadServerKey(file);
    const line = readFileSync(`${file}.pub`, 'utf8');
    assert.equal(parseOpenSshPublicKey(line).equals(key.publicKey), true);
    assert.equal(parseOpenSshPublicKey(`${line.trim()} a comment\n`).equals(key.publicKey), true);
    const rsa = readFileSync(`${sshKeygen('rsa-pub', ['-t', 'rsa', '-b', '2048', '-N', ''])}.pub`, 'utf8');
    assert.throws(() => parseOpenSshPublicKey(rsa), /expected "ssh-ed25519/);
    assert.throws(() => parseOpenSshPublicKey('ssh-ed25519 AAAA'), /truncated|not a 32-byte/);
    assert.throws(() => parseOpenSshPublicKey(''), /expected/);
  });
});
