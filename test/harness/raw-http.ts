import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { connect } from 'node:net';
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

/** What came back on a raw connection: the status (0 when the connection closed unanswered) and the body. */
export interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/**
 * Sends one request exactly as given (request line, headers, body bytes) on a fresh TCP connection and reads
 * the answer until the server closes it: for targets and framing that fetch() would never send.
 */
export function rawRequest(
  port: number,
  request: {
    method: string;
    target: string | Buffer;
    headers?: [string, string][];
    body?: Buffer;
    /** Content-Length to declare (default: the body's length); with `trickle`, the body is sent slowly. */
    contentLength?: number;
    /** Sends the body in pieces of `bytes` every `everyMs`, until `stopAfterBytes` (then nothing more). */
    trickle?: { bytes: number; everyMs: number; stopAfterBytes?: number };
  },
  timeoutMs = 20_000,
): Promise<RawAnswer> {
  const head = Buffer.concat([
    Buffer.from(`${request.method} `, 'latin1'),
    Buffer.isBuffer(request.target) ? request.target : Buffer.from(request.target, 'latin1'),
    Buffer.from(
      ` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n${(request.headers ?? [])
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('')}${
        request.body ? `Content-Length: ${request.contentLength ?? request.body.length}\r\n` : ''
      }\r\n`,
      'latin1',
    ),
  ]);
  return new Promise((resolve, reject) => {
    let trickle: NodeJS.Timeout | undefined;
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head);
      const body = request.body;
      if (!body) return;
      if (!request.trickle) return void socket.write(body);
      const { bytes, everyMs, stopAfterBytes = body.length } = request.trickle;
      let sent = 0;
      trickle = setInterval(() => {
        const end = Math.min(sent + bytes, stopAfterBytes, body.length);
        if (end > sent && !socket.destroyed) socket.write(body.subarray(sent, end));
        sent = end;
        if (sent >= Math.min(stopAfterBytes, body.length)) clearInterval(trickle);
      }, everyMs);
    });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${request.method} ${request.target} in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => {}); // a reset after the answer still counts as the answer
    socket.on('close', () => {
      clearTimeout(timer);
      clearInterval(trickle);
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const headText = split < 0 ? text : text.slice(0, split);
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(headText)?.[1] ?? 0);
      resolve({ status, head: headText, body: split < 0 ? '' : text.slice(split + 4) });
    });
  });
}
