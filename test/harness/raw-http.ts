import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { loadServerKey, mintCharmJwt, type ServerKey, singleFileMultipart } from '@cring/charm';
import type { Cluster } from '@cring/local-cluster';

/** Tokens as the cluster's backends mint them, and forgeries of every kind the gateway must refuse. */
export function tokens(cluster: Cluster) {
  const clusterKey = loadServerKey(cluster.serverKeyFile);
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const otherKey: ServerKey = { privateKey, publicKey, kid: randomBytes(32).toString('hex') };
  const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return {
    valid: (charmId: string) => mintCharmJwt({ key: clusterKey, issuer: cluster.publicUrl, charmId }),
    forged: (charmId: string) => ({
      'signed by another key': mintCharmJwt({ key: otherKey, issuer: cluster.publicUrl, charmId }),
      'from a foreign issuer': mintCharmJwt({
        key: otherKey,
        issuer: 'http://charm.attacker.example:35354',
        charmId,
      }),
      'cluster key, wrong issuer': mintCharmJwt({
        key: clusterKey,
        issuer: 'http://charm.attacker.example:35354',
        charmId,
      }),
      expired: mintCharmJwt({
        key: clusterKey,
        issuer: cluster.publicUrl,
        charmId,
        nowSeconds: now - 7200,
        ttlSeconds: 3600,
      }),
      'alg none': `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: charmId, iss: cluster.publicUrl, aud: ['charm'], exp: now + 600 })}.`,
    }),
  };
}

export function gatewayUrl(cluster: Cluster, path: string): string {
  return `http://127.0.0.1:${cluster.gatewayPorts.httpPort}${path}`;
}

/** An upload framed exactly like the stock charm client's. */
export function uploadBody(bytes: Buffer): { body: Buffer; contentType: string } {
  const { head, tail, contentType } = singleFileMultipart({ filename: '/upload.bin' });
  return { body: Buffer.concat([head, bytes, tail]), contentType };
}
