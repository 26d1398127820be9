import { execFileSync } from 'node:child_process';
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
    /** Content-Length to declare (default: the body's length; null: none, e.g. for a chunked body). */
    contentLength?: number | null;
    /** Sends the body in pieces of `bytes` every `everyMs`, until `stopAfterBytes` (then nothing more). */
    trickle?: { bytes: number; everyMs: number; stopAfterBytes?: number };
    /**
     * Like a keep-alive client (the stock charm client): no `Connection: close`; the answer is complete when its
     * framing says so, and the client closes then. With `Connection: close` a server that answers before reading
     * a large body closes on unread bytes, and the reset can destroy the answer before it is read.
     */
    keepAlive?: boolean;
    /** Asked when no answer came in time, before the connection is dropped: what else the report says. */
    beforeGivingUp?: (localPort: number | undefined) => Promise<string>;
  },
  timeoutMs = 20_000,
): Promise<RawAnswer> {
  const head = Buffer.concat([
    Buffer.from(`${request.method} `, 'latin1'),
    Buffer.isBuffer(request.target) ? request.target : Buffer.from(request.target, 'latin1'),
    Buffer.from(
      ` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${request.keepAlive ? '' : 'Connection: close\r\n'}${(
        request.headers ?? []
      )
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join('')}${
        request.body && request.contentLength !== null
          ? `Content-Length: ${request.contentLength ?? request.body.length}\r\n`
          : ''
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
    const sentAt = Date.now(); // the connection is opened now
    let firstBytesAt = 0;
    let givingUp = false;
    const timer = setTimeout(async () => {
      givingUp = true; // a close while the report is gathered is still no answer in time
      const tcpState = connectionState(socket.localPort);
      const more = request.beforeGivingUp
        ? await request.beforeGivingUp(socket.localPort).catch((err: Error) => err.message)
        : '';
      clearInterval(trickle);
      socket.destroy();
      // What arrived tells an answer that never came from one whose connection was never closed.
      const received = Buffer.concat(chunks);
      const got =
        received.length === 0
          ? 'nothing arrived'
          : `${received.length} bytes arrived, the first ${firstBytesAt - sentAt} ms after connecting, and the connection stayed open: ${JSON.stringify(received.toString('latin1').slice(0, 300))}`;
      reject(
        new Error(
          `no answer to ${request.method} ${request.target} in ${timeoutMs} ms (${got}; the connection as the kernel saw it: ${tcpState})${more ? `\n${more}` : ''}`,
        ),
      );
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      if (chunks.length === 0) firstBytesAt = Date.now();
      chunks.push(chunk);
      if (request.keepAlive && answerOf(Buffer.concat(chunks), request.method).complete) socket.destroy();
    });
    socket.on('error', () => {}); // a reset after the answer still counts as the answer
    socket.on('close', () => {
      if (givingUp) return;
      clearTimeout(timer);
      clearInterval(trickle);
      resolve(answerOf(Buffer.concat(chunks), request.method).answer);
    });
  });
}

/** The final (non-1xx) answer in the bytes received so far, and whether its framing says it is complete. */
function answerOf(bytes: Buffer, method: string): { answer: RawAnswer; complete: boolean } {
  let text = bytes.toString('latin1');
  for (;;) {
    const split = text.indexOf('\r\n\r\n');
    const head = split < 0 ? text : text.slice(0, split);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    if (status >= 100 && status < 200 && split >= 0) {
      text = text.slice(split + 4); // 100 Continue: the answer follows
      continue;
    }
    const raw = split < 0 ? '' : text.slice(split + 4);
    const answer = { status, head, body: Buffer.from(raw, 'latin1').toString('utf8') };
    if (split < 0) return { answer, complete: false };
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
    const complete =
      method === 'HEAD' || status === 204 || status === 304
        ? true
        : length
          ? raw.length >= Number(length[1])
          : /\r\ntransfer-encoding:\s*chunked/i.test(head) && raw.endsWith('0\r\n\r\n');
    return { answer, complete };
  }
}

/** Both ends of a local TCP connection as `ss` lists them (state, queued bytes), for a report. */
function connectionState(localPort: number | undefined): string {
  if (!localPort) return 'no local port';
  try {
    const lines = execFileSync('ss', ['-tnoH', 'state', 'all'], { encoding: 'utf8', timeout: 2_000 }).split(
      '\n',
    );
    return lines
      .filter((line) => line.includes(`:${localPort} `))
      .map((l) => l.trim().replace(/\s+/g, ' '))
      .join(' | ');
  } catch (err) {
    return `ss failed: ${(err as Error).message.slice(0, 60)}`;
  }
}
