import type { ClientRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Backend } from './backends.ts';

// node:http via getBuiltinModule, not an ESM import: importing it loads Node's bundled undici (the lazy WebSocket
// exports), ~12 MiB RSS that nothing here uses (nodejs/node#59686; apps/gateway/README.md, Memory).
const { request: httpRequest } = process.getBuiltinModule('node:http');

/** A failed health probe; the message says which probe, where, and why. */
export class ProbeError extends Error {
  readonly code = 'PROBE_FAILED';
  readonly backend: string;
  readonly probe: 'http' | 'ssh';
  constructor(probe: 'http' | 'ssh', backend: string, message: string, cause?: unknown) {
    super(message, { cause });
    this.name = 'ProbeError';
    this.probe = probe;
    this.backend = backend;
  }
}

const MAX_JWKS_BYTES = 64 * 1024;
// RFC 4253 §4.2: the identification line is at most 255 bytes including CR LF.
const MAX_IDENT_BYTES = 255;

const reason = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** Destroys the socket and resolves once its handle is closed, so a probe never leaves a socket behind. */
function closeSocket(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise((resolve) => {
    socket.once('close', () => resolve());
    socket.destroy();
  });
}

/** `GET <httpUrl>/v1/public/jwks` must answer 200 with JSON holding `keys`: public, no auth, changes nothing. */
export async function probeHttp(backend: Backend, timeoutMs: number): Promise<void> {
  const url = new URL('/v1/public/jwks', backend.httpUrl);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  let req: ClientRequest | undefined;
  let socket: Socket | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      // agent: false gives a one-shot connection (Connection: close) instead of a pooled keep-alive socket.
      req = send(url, { method: 'GET', agent: false, headers: { accept: 'application/json' } });
      const current = req;
      timer = setTimeout(() => current.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      current.once('socket', (s: Socket) => {
        socket = s;
      });
      current.once('error', reject);
      current.once('response', (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`answered ${res.statusCode}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_JWKS_BYTES) current.destroy(new Error(`answer larger than ${MAX_JWKS_BYTES} bytes`));
          else chunks.push(chunk);
        });
        res.once('error', reject);
        res.once('end', () => {
          try {
            const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { keys?: unknown };
            if (!Array.isArray(body?.keys)) throw new Error('the answer has no "keys" array');
            resolve();
          } catch (err) {
            reject(err instanceof SyntaxError ? new Error('the answer is not JSON') : err);
          }
        });
      });
      current.end();
    });
  } catch (err) {
    throw new ProbeError('http', backend.name, `GET ${url.href} failed: ${reason(err)}`, err);
  } finally {
    clearTimeout(timer);
    req?.destroy();
    if (socket) await closeSocket(socket);
  }
}

/**
 * A fresh ed25519 key pair in OpenSSH form. ssh2's generator now and then writes a private key its own parser
 * refuses ("Malformed OpenSSH private key", about 1 in 200): such a probe key would fail every probe of the
 * process, so a pair is only taken once it parses.
 */
export function generateSshKeyPair(): { private: string; public: string } {
  for (let attempt = 0; attempt < 20; attempt++) {
    const pair = ssh2.utils.generateKeyPairSync('ed25519');
    if (!(ssh2.utils.parseKey(pair.private) instanceof Error)) return pair;
  }
  throw new Error('could not generate an SSH key that ssh2 parses');
}

let probeKey: string | undefined;
/** One throwaway key per process: the charm server accepts any key and creates no user for it. */
function probePrivateKey(): string {
  probeKey ??= generateSshKeyPair().private;
  return probeKey;
}

/**
 * TCP connect, an `SSH-2.0` identification line, then an ssh2 handshake up to `ready` (key exchange and public-key
 * auth). No channel is opened and no command runs: on a charm server any command would create an account.
 */
export async function probeSsh(backend: Backend, timeoutMs: number): Promise<void> {
  const where = `${backend.sshHost}:${backend.sshPort}`;
  // No Nagle: every handshake step is a small write waiting for an answer (40 ms per step otherwise).
  const socket = connect({ host: backend.sshHost, port: backend.sshPort, noDelay: true });
  const client = new ssh2.Client();
  let stage = 'while connecting';
  let ready = false;
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => {
        if (ready) resolve();
        else reject(new Error(`no answer within ${timeoutMs} ms ${stage}`));
      }, timeoutMs);
      socket.on('error', (err) => {
        if (!ready) reject(err);
      });
      socket.once('close', () => {
        if (ready) resolve();
        else reject(new Error(`the server closed the connection ${stage}`));
      });
      client.on('error', (err) => {
        if (!ready) reject(err);
      });
      client.once('ready', () => {
        ready = true;
        stage = 'while disconnecting';
        // A clean SSH disconnect; the socket's 'close' then resolves.
        client.end();
      });

      let received = Buffer.alloc(0);
      const onIdent = (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        const newline = received.indexOf(0x0a);
        if (newline === -1) {
          if (received.length > MAX_IDENT_BYTES) {
            socket.off('data', onIdent);
            reject(
              new Error(`not an SSH server: no identification line in the first ${received.length} bytes`),
            );
          }
          return;
        }
        socket.off('data', onIdent);
        socket.pause();
        const line = received.subarray(0, newline).toString('latin1').replace(/\r$/, '');
        if (!line.startsWith('SSH-2.0-')) {
          reject(new Error(`not an SSH server: it said ${JSON.stringify(line.slice(0, 80))}`));
          return;
        }
        // Hand every byte back so ssh2 reads the identification line itself.
        socket.unshift(received);
        stage = `during the SSH handshake (server ${line})`;
        try {
          client.connect({
            sock: socket,
            username: 'charm',
            privateKey: probePrivateKey(),
            readyTimeout: 0,
            keepaliveInterval: 0,
          });
        } catch (err) {
          reject(err);
        }
      };
      socket.once('connect', () => {
        stage = 'while waiting for the SSH identification line';
      });
      socket.on('data', onIdent);
    });
  } catch (err) {
    throw new ProbeError('ssh', backend.name, `SSH probe of ${where} failed: ${reason(err)}`, err);
  } finally {
    clearTimeout(timer);
    await closeSocket(socket);
  }
}
