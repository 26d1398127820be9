/**
 * The charm server's ed25519 key (`DATA_DIR/.ssh/charm_server_ed25519`): SSH host key and JWT signing key in one.
 * Every backend of the cluster shares it, so whoever holds it can mint tokens all backends accept.
 */
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface ServerKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** Lowercase hex sha256 of the 64-byte ed25519 private key (seed ‖ public key), as the server's JWT `kid`. */
  kid: string;
}

const PEM_LABEL = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/;
const OPENSSH_MAGIC = Buffer.from('openssh-key-v1\0', 'latin1');
const ED25519 = 'ssh-ed25519';
const SEED_BYTES = 32;
const PUBLIC_KEY_BYTES = 32;
// A PKCS#8 ed25519 private key (RFC 8410) is this DER prefix followed by the 32-byte seed.
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/** Parses an unencrypted OpenSSH-format ed25519 private key (what `ssh-keygen -t ed25519 -N ''` writes). */
export function parseServerKey(openSshPrivateKey: string): ServerKey {
  const pem = PEM_LABEL.exec(openSshPrivateKey);
  if (!pem) throw new Error('not a PEM file: expected -----BEGIN OPENSSH PRIVATE KEY-----');
  const label = pem[1] as string;
  if (label !== 'OPENSSH PRIVATE KEY') {
    throw new Error(
      `found a "${label}" block, expected "OPENSSH PRIVATE KEY" (an ed25519 key in OpenSSH format, as charm serve writes it)`,
    );
  }
  const body = (pem[2] as string).replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error('the key block is not valid base64');
  const blob = Buffer.from(body, 'base64');
  if (!blob.subarray(0, OPENSSH_MAGIC.length).equals(OPENSSH_MAGIC)) {
    throw new Error('the key block does not start with "openssh-key-v1"');
  }
  const reader = new SshReader(blob.subarray(OPENSSH_MAGIC.length));
  const cipher = reader.string().toString('latin1');
  const kdf = reader.string().toString('latin1');
  reader.string(); // kdf options
  if (cipher !== 'none' || kdf !== 'none') {
    throw new Error(
      `the key is encrypted (cipher ${cipher}, kdf ${kdf}): remove the passphrase with \`ssh-keygen -p -N '' -f <file>\``,
    );
  }
  const keyCount = reader.uint32();
  if (keyCount !== 1) throw new Error(`the file holds ${keyCount} keys, expected exactly 1`);
  const publicBlob = new SshReader(reader.string());
  const publicType = publicBlob.string().toString('latin1');
  if (publicType !== ED25519) throw new Error(`the key is ${publicType}, expected ${ED25519}`);

  const secret = new SshReader(reader.string());
  const [checkA, checkB] = [secret.uint32(), secret.uint32()];
  if (checkA !== checkB) {
    throw new Error('the key is corrupt or encrypted (check integers differ)');
  }
  const secretType = secret.string().toString('latin1');
  if (secretType !== ED25519) throw new Error(`the key is ${secretType}, expected ${ED25519}`);
  const publicKeyBytes = secret.string();
  const privateKeyBytes = secret.string(); // seed ‖ public key, the Go ed25519.PrivateKey layout
  if (
    publicKeyBytes.length !== PUBLIC_KEY_BYTES ||
    privateKeyBytes.length !== SEED_BYTES + PUBLIC_KEY_BYTES
  ) {
    throw new Error('the ed25519 key has the wrong length');
  }
  if (!privateKeyBytes.subarray(SEED_BYTES).equals(publicKeyBytes)) {
    throw new Error('the key is corrupt: its private part does not carry its public key');
  }

  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, privateKeyBytes.subarray(0, SEED_BYTES)]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = createPublicKey(privateKey);
  if (!rawPublicKey(publicKey).equals(publicKeyBytes)) {
    throw new Error('the key is corrupt: its seed does not derive its public key');
  }
  return { privateKey, publicKey, kid: createHash('sha256').update(privateKeyBytes).digest('hex') };
}

/** Reads and parses the server key file; errors name the file. */
export function loadServerKey(file: string): ServerKey {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read the charm server key ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return parseServerKey(text);
  } catch (err) {
    throw new Error(`bad charm server key ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** The signing key published at `/v1/public/jwks` (the server publishes exactly one). */
export function publicKeyFromJwks(jwks: unknown): { publicKey: KeyObject; kid: string } {
  const keys = isRecord(jwks) ? jwks.keys : undefined;
  if (!Array.isArray(keys)) throw new Error('not a JWKS: expected {"keys":[...]}');
  const usable = keys.filter(
    (key): key is Record<string, unknown> => isRecord(key) && key.kty === 'OKP' && key.crv === 'Ed25519',
  );
  if (usable.length !== 1) {
    throw new Error(`the JWKS has ${usable.length} Ed25519 keys, expected exactly 1`);
  }
  const key = usable[0] as Record<string, unknown>;
  if (key.alg !== undefined && key.alg !== 'EdDSA')
    throw new Error(`the JWKS key is for ${key.alg}, not EdDSA`);
  if (typeof key.kid !== 'string' || key.kid === '') throw new Error('the JWKS key has no kid');
  if (typeof key.x !== 'string' || Buffer.from(key.x, 'base64url').length !== PUBLIC_KEY_BYTES) {
    throw new Error('the JWKS key has no valid "x" (32 bytes, base64url)');
  }
  const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: key.x }, format: 'jwk' });
  return { publicKey, kid: key.kid };
}

/** Parses an OpenSSH public key line (`ssh-ed25519 AAAA… [comment]`, as in `charm_server_ed25519.pub`). */
export function parseOpenSshPublicKey(line: string): KeyObject {
  const [type, base64] = line.trim().split(/\s+/);
  if (type !== ED25519 || !base64 || !/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) {
    throw new Error(`expected "${ED25519} AAAA…" (the .pub file of the cluster's server key)`);
  }
  const blob = new SshReader(Buffer.from(base64, 'base64'));
  const blobType = blob.string().toString('latin1');
  const raw = blob.string();
  if (blobType !== ED25519 || raw.length !== PUBLIC_KEY_BYTES) {
    throw new Error(`the key blob is not a ${PUBLIC_KEY_BYTES}-byte ${ED25519} key`);
  }
  return createPublicKey({
    key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') },
    format: 'jwk',
  });
}

function rawPublicKey(publicKey: KeyObject): Buffer {
  return Buffer.from(publicKey.export({ format: 'jwk' }).x as string, 'base64url');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the SSH wire encoding (RFC 4251): uint32 lengths and length-prefixed strings. */
class SshReader {
  private readonly buffer: Buffer;
  private offset = 0;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  take(length: number): Buffer {
    if (this.offset + length > this.buffer.length) throw new Error('the key block is truncated');
    const bytes = this.buffer.subarray(this.offset, this.offset + length);
    this.offset += length;
    return bytes;
  }

  uint32(): number {
    return this.take(4).readUInt32BE(0);
  }

  string(): Buffer {
    return this.take(this.uint32());
  }
}
