// For the real-server tests: the charm CLI, and charm's SSH API (api-link, api-unlink, id) spoken with ssh2.
import { execFile } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { generateSshKeyPair } from '@cring/charm';
import ssh2, { type ClientChannel } from 'ssh2';

const { Client } = ssh2;
type Client = InstanceType<typeof Client>;

export interface CharmCli {
  dataDir: string;
  /** Runs `charm <args>` (stdout not a TTY); rejects with the output on a non-zero exit. */
  run(args: string[]): Promise<string>;
}

export function charmCli(options: {
  charmBin: string;
  dataDir: string;
  sshPort: number;
  httpPort: number;
}): CharmCli {
  mkdirSync(options.dataDir, { recursive: true });
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: options.dataDir,
    CHARM_HOST: '127.0.0.1',
    CHARM_SSH_PORT: String(options.sshPort),
    CHARM_HTTP_PORT: String(options.httpPort),
    CHARM_DATA_DIR: options.dataDir,
  };
  return {
    dataDir: options.dataDir,
    run: (args) =>
      new Promise((resolve, reject) => {
        execFile(options.charmBin, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
          if (err) reject(new Error(`charm ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`));
          else resolve(stdout);
        });
      }),
  };
}

/** A fresh ed25519 key pair, OpenSSH format. */
export function generateKeyPair(): { private: string; public: string } {
  return generateSshKeyPair();
}

/** The public key text as charm stores it: `type base64`, no comment. */
export function keyText(openSshPublicKey: string): string {
  return openSshPublicKey.trim().split(/\s+/).slice(0, 2).join(' ');
}

function connect(port: number, privateKey: string | Buffer): Promise<Client> {
  return new Promise((resolve, reject) => {
    const conn = new Client();
    conn
      .once('ready', () => resolve(conn))
      .once('error', reject)
      .connect({ host: '127.0.0.1', port, username: 'charm', privateKey, readyTimeout: 15_000 });
  });
}

function exec(conn: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    conn.exec(command, (err, channel) => (err ? reject(err) : resolve(channel)));
  });
}

/** JSON lines from a channel, one at a time. */
function jsonLines(channel: ClientChannel) {
  let buffer = '';
  const lines: unknown[] = [];
  const waiting: ((line: unknown) => void)[] = [];
  let closed = false;
  channel.on('data', (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) {
        const parsed = JSON.parse(line) as unknown;
        const waiter = waiting.shift();
        if (waiter) waiter(parsed);
        else lines.push(parsed);
      }
      newline = buffer.indexOf('\n');
    }
  });
  channel.on('close', () => {
    closed = true;
    for (const waiter of waiting.splice(0)) waiter(undefined);
  });
  return {
    next(timeoutMs = 20_000): Promise<Record<string, unknown>> {
      if (lines.length > 0) return Promise.resolve(lines.shift() as Record<string, unknown>);
      if (closed) return Promise.reject(new Error('channel closed'));
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no JSON line in time')), timeoutMs);
        waiting.push((line) => {
          clearTimeout(timer);
          if (line === undefined) reject(new Error('channel closed'));
          else resolve(line as Record<string, unknown>);
        });
      });
    },
  };
}

const closed = (channel: ClientChannel) =>
  new Promise<void>((resolve) => channel.once('close', () => resolve()));

/** Runs a command that prints raw text (`id`, `jwt`). */
export async function sshCommand(
  port: number,
  privateKey: string | Buffer,
  command: string,
): Promise<string> {
  const conn = await connect(port, privateKey);
  try {
    const channel = await exec(conn, command);
    let out = '';
    channel.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    await closed(channel);
    return out;
  } finally {
    conn.end();
  }
}

/**
 * charm's link over the SSH API, both sessions on one server: the generator (`api-link`) approves the
 * requester (`api-link <TOKEN>`). Resolves with the generator's final status (7 = success).
 */
export async function linkKeys(
  port: number,
  generatorKey: string | Buffer,
  requesterKey: string | Buffer,
): Promise<{ generatorStatus: unknown; requesterStatuses: unknown[] }> {
  const generator = await connect(port, generatorKey);
  const requester = await connect(port, requesterKey);
  try {
    const genChannel = await exec(generator, 'api-link');
    const genLines = jsonLines(genChannel);
    const created = await genLines.next();
    if (created.status !== 1 || typeof created.token !== 'string') {
      throw new Error(`api-link: unexpected first message ${JSON.stringify(created)}`);
    }
    const reqChannel = await exec(requester, `api-link ${created.token}`);
    const reqLines = jsonLines(reqChannel);
    const request = await genLines.next();
    if (request.status !== 10)
      throw new Error(`api-link: expected the request, got ${JSON.stringify(request)}`);
    genChannel.write('{"message":"yes"}\n');
    const result = await genLines.next();
    const requesterStatuses: unknown[] = [];
    for (;;) {
      const line = await reqLines.next().catch(() => undefined);
      if (!line) break;
      requesterStatuses.push(line.status);
      if (line.status !== 2 && line.status !== 10) break;
    }
    genChannel.end();
    reqChannel.end();
    return { generatorStatus: result.status, requesterStatuses };
  } finally {
    generator.end();
    requester.end();
  }
}

/** api-unlink: the caller's account drops `publicKey` (read from stdin as {"key": …}). */
export async function unlinkKey(
  port: number,
  callerKey: string | Buffer,
  publicKey: string,
): Promise<string> {
  const conn = await connect(port, callerKey);
  try {
    const channel = await exec(conn, 'api-unlink');
    let out = '';
    channel.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
    });
    channel.write(`${JSON.stringify({ key: publicKey })}\n`);
    await closed(channel);
    return out;
  } finally {
    conn.end();
  }
}
