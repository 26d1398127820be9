// Runs against ONE real `charm serve` (v0.12.6) started by the local-cluster launcher, with a user created by the
// real charm CLI. Proves that minted tokens are accepted and that the client's behaviour matches the server's.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, randomBytes, randomUUID, sign } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import http from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { cacheBinDir } from '@cring/local-cluster';
import {
  type CharmBackend,
  createCharmBackend,
  SERVER_KEY_FILE,
} from '../../../tools/local-cluster/src/charm-backend.ts';
import {
  type BackendClient,
  BackendHttpError,
  BackendUnavailableError,
  ChecksumMismatchError,
  createBackendClient,
  PathIsDirectoryError,
} from './backend-client.ts';
import type { Backend } from './backends.ts';
import { fsPathFromUrl } from './fs-path.ts';
import { bearerToken, mintCharmJwt, verifyCharmJwt } from './jwt.ts';
import { singleFileMultipart } from './multipart.ts';
import { loadServerKey, publicKeyFromJwks, type ServerKey } from './server-key.ts';

// Deliberately not http://127.0.0.1:<port>: the backend must take the issuer from CHARM_SERVER_PUBLIC_URL.
const ISSUER = 'http://charmed-ring.test:35354';

let runDir: string;
let charmBackend: CharmBackend;
let backend: Backend;
let key: ServerKey;
let charmId: string;
let client: BackendClient;

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
const userFiles = (...path: string[]) => join(charmBackend.info.dataDir, 'files', charmId, ...path);

/** The real charm CLI against the backend; its own data dir is its identity. */
async function charmCli(args: string[]): Promise<string> {
  const clientDir = join(runDir, 'cli');
  mkdirSync(clientDir, { recursive: true });
  const { stdout } = await promisify(execFile)(join(cacheBinDir(), 'charm'), args, {
    timeout: 60_000,
    env: {
      PATH: process.env.PATH ?? '',
      HOME: clientDir,
      CHARM_HOST: '127.0.0.1',
      CHARM_SSH_PORT: String(charmBackend.info.sshPort),
      CHARM_HTTP_PORT: String(charmBackend.info.httpPort),
      CHARM_DATA_DIR: clientDir,
    },
  });
  return stdout;
}

/** A raw request with a literal path (no normalisation by a URL parser). */
async function raw(
  method: string,
  path: string,
  options: { token?: string; body?: Buffer; headers?: http.OutgoingHttpHeaders } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return await new Promise((resolve, reject) => {
    const request = http.request({
      method,
      host: '127.0.0.1',
      port: charmBackend.info.httpPort,
      path,
      headers: { ...(options.token ? { Authorization: `bearer ${options.token}` } : {}), ...options.headers },
    });
    request.on('error', reject);
    request.on('response', async (response) => {
      const chunks: Buffer[] = [];
      for await (const chunk of response) chunks.push(chunk as Buffer);
      resolve({
        status: response.statusCode ?? 0,
        headers: response.headers,
        body: Buffer.concat(chunks).toString(),
      });
    });
    request.end(options.body);
  });
}

function rawUpload(path: string, bytes: Buffer, token: string) {
  const { head, tail, contentType } = singleFileMultipart();
  return raw('POST', path, {
    token,
    body: Buffer.concat([head, bytes, tail]),
    headers: { 'Content-Type': contentType },
  });
}

/** A stream of `bytes` in 64 KiB chunks, as a replication source would deliver them. */
function streamOf(bytes: Buffer): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < bytes.length; offset += 65_536)
        yield bytes.subarray(offset, offset + 65_536);
    })(),
  );
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

before(async () => {
  runDir = mkdtempSync(join(tmpdir(), 'cring-backend-client-'));
  charmBackend = await createCharmBackend({
    name: 'b1',
    charmBin: join(cacheBinDir(), 'charm'),
    runDir,
    publicUrl: ISSUER,
  });
  await charmBackend.process.start();
  charmId = (await charmCli(['id'])).trim();
  assert.match(charmId, /^[0-9a-f-]{36}$/);
  key = loadServerKey(join(charmBackend.info.dataDir, SERVER_KEY_FILE));
  backend = {
    name: 'b1',
    httpUrl: charmBackend.info.httpUrl,
    sshHost: '127.0.0.1',
    sshPort: charmBackend.info.sshPort,
  };
  client = createBackendClient({ backend, key, issuer: ISSUER, timeoutMs: 5_000 });
});

after(async () => {
  client?.close();
  await charmBackend?.process.stop();
  if (runDir) rmSync(runDir, { recursive: true, force: true });
});

describe('tokens and the real charm server', () => {
  it('publishes the key and kid that loadServerKey computes', async () => {
    const response = await raw('GET', '/v1/public/jwks');
    assert.equal(response.status, 200);
    const published = publicKeyFromJwks(JSON.parse(response.body));
    assert.equal(published.kid, key.kid);
    assert.equal(published.publicKey.equals(key.publicKey), true);
  });

  it('issues tokens (charm jwt) that verifyCharmJwt accepts', async () => {
    const token = (await charmCli(['jwt'])).trim();
    const claims = verifyCharmJwt(token, { publicKey: key.publicKey, kid: key.kid, issuer: ISSUER });
    assert.equal(claims.charmId, charmId);
    assert.ok(claims.expiresAt > Date.now() / 1000 + 3500, 'the server issues tokens for one hour');
    const header = JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString());
    assert.deepEqual(header, { alg: 'EdDSA', kid: key.kid, typ: 'JWT' });
  });

  it('accepts minted tokens and refuses expired, foreign-issuer and foreign-key ones with 401', async () => {
    const minted = mintCharmJwt({ key, issuer: ISSUER, charmId });
    // The user has no files yet: the root itself is missing.
    const ok = await raw('GET', '/v1/fs/', { token: minted });
    assert.deepEqual(
      [ok.status, ok.headers['content-type'], ok.body],
      [404, 'application/json', '{"message":"file not found"}\n'],
    );

    const other = generateKeyPairSync('ed25519');
    const refused = {
      expired: mintCharmJwt({
        key,
        issuer: ISSUER,
        charmId,
        ttlSeconds: 60,
        nowSeconds: Date.now() / 1000 - 61,
      }),
      'wrong issuer': mintCharmJwt({ key, issuer: `${ISSUER}/`, charmId }),
      'other key': mintCharmJwt({ key: { ...other, kid: key.kid }, issuer: ISSUER, charmId }),
      'other audience': mintCharmJwt({ key, issuer: ISSUER, charmId, audience: ['other'] }),
    };
    for (const [what, token] of Object.entries(refused)) {
      const response = await raw('GET', '/v1/fs/', { token });
      assert.deepEqual([response.status, response.body], [401, '{"message":"JWT is invalid."}'], what);
    }
    const missing = await raw('GET', '/v1/fs/');
    assert.deepEqual([missing.status, missing.body], [400, '{"message":"JWT is missing."}']);
    const malformed = await raw('GET', '/v1/fs/', { headers: { Authorization: `token ${minted}` } });
    assert.deepEqual(
      [malformed.status, malformed.body],
      [500, '{"message":"Something went wrong while checking the JWT."}'],
    );
  });

  it('(v0.12.6) accepts a token without exp, which verifyCharmJwt refuses', async () => {
    const input = [
      { alg: 'EdDSA', typ: 'JWT' },
      { iss: ISSUER, sub: charmId, aud: ['charm'] },
    ]
      .map((part) => Buffer.from(JSON.stringify(part)).toString('base64url'))
      .join('.');
    const token = `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`;
    assert.equal((await raw('GET', '/v1/fs/', { token })).status, 404); // passed auth: "file not found"
    assert.throws(() => verifyCharmJwt(token, { publicKey: key.publicKey, issuer: ISSUER }), /no expiry/);
  });
});

describe('BackendClient against the real charm server', () => {
  it('uploads, reads back and stats a small file', async () => {
    const bytes = Buffer.from('hello charm\n');
    await client.putFile(charmId, '/docs//a.txt', { body: streamOf(bytes), size: bytes.length, mode: 0o640 });
    assert.deepEqual(readFileSync(userFiles('docs', 'a.txt')), bytes);
    assert.equal(statSync(userFiles('docs', 'a.txt')).mode & 0o777, 0o640);

    const file = await client.getFile(charmId, '/docs/a.txt');
    assert.ok(file);
    assert.equal(file.mode, 0o640);
    assert.equal(file.contentLength, bytes.length);
    assert.match(file.lastModified, /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    assert.deepEqual(await readAll(file.body), bytes);

    const info = await client.stat(charmId, '/docs/a.txt');
    assert.deepEqual(info && { ...info, modtime: typeof info.modtime }, {
      name: 'a.txt',
      is_dir: false,
      size: bytes.length,
      modtime: 'string',
      mode: 0o640,
    });
    const directory = await client.stat(charmId, '/docs');
    assert.equal(directory?.is_dir, true);
    assert.equal(
      directory?.mode,
      0x80000000 + 0o750,
      'Go ModeDir plus the file mode with x bits where r is set',
    );
    assert.deepEqual(
      directory?.files?.map((entry) => [entry.name, entry.is_dir, entry.size]),
      [['a.txt', false, bytes.length]],
    );
    const root = await client.stat(charmId, '/');
    assert.equal(root?.name, charmId, "the root listing is named after the user's directory");
  });

  it('streams a large file both ways (no Content-Length on the way back)', async () => {
    const bytes = randomBytes(5 * 1024 * 1024 + 3);
    await client.putFile(charmId, '/big/blob', {
      body: streamOf(bytes),
      size: bytes.length,
      mode: 0o600,
      expectSha256: sha256(bytes).toUpperCase(),
    });
    const file = await client.getFile(charmId, '/big/blob');
    assert.ok(file);
    assert.equal(file.contentLength, undefined);
    assert.equal(sha256(await readAll(file.body)), sha256(bytes));
    assert.equal((await client.stat(charmId, '/big/blob'))?.size, bytes.length);

    // A reader may stop early; the client stays usable.
    const partial = await client.getFile(charmId, '/big/blob');
    assert.ok(partial);
    for await (const chunk of partial.body) {
      assert.ok((chunk as Buffer).length > 0);
      break;
    }
    assert.equal(partial.body.destroyed, true);
    assert.equal((await client.stat(charmId, '/big/blob'))?.is_dir, false);
  });

  it('reports missing files as undefined and refuses to read a directory as a file', async () => {
    assert.equal(await client.getFile(charmId, '/nope'), undefined);
    assert.equal(await client.stat(charmId, '/nope/deeper'), undefined);
    await assert.rejects(client.getFile(charmId, '/docs'), PathIsDirectoryError);
  });

  /** Uploads over `original` whose bytes differ (or whose size is wrong) are refused; the stored file stays. */
  async function assertMismatchesRefused(path: string, original: Buffer) {
    await client.putFile(charmId, path, { body: streamOf(original), size: original.length, mode: 0o644 });
    const stored = userFiles(path.slice(1));
    const before = statSync(stored);
    const other = randomBytes(original.length);
    const attempts: [string, Buffer, number, string | undefined][] = [
      ['different bytes', other, other.length, sha256(original)],
      ['fewer bytes than announced', other.subarray(1), other.length, undefined],
      ['more bytes than announced', other, other.length - 1, undefined],
    ];
    for (const [what, body, size, expectSha256] of attempts) {
      await assert.rejects(
        client.putFile(charmId, path, {
          body: streamOf(body),
          size,
          mode: 0o644,
          ...(expectSha256 ? { expectSha256 } : {}),
        }),
        (err: unknown) => {
          assert.ok(err instanceof ChecksumMismatchError, `${what}: ${err}`);
          assert.equal(err.backend, 'b1');
          return true;
        },
      );
    }
    await sleep(300); // give the server time to act on the broken requests (it must not)
    // Compared by hash: a diff of megabytes would take minutes to print.
    assert.equal(sha256(readFileSync(stored)), sha256(original), 'the stored file changed');
    assert.equal(statSync(stored).mtimeMs, before.mtimeMs);
    // The connection pool still works after the aborted uploads.
    assert.equal((await client.stat(charmId, path))?.size, original.length);
  }

  it('aborts an upload whose bytes do not match, leaving the stored file untouched', async () => {
    await assertMismatchesRefused('/guarded', randomBytes(3 * 1024 * 1024));
  });

  it('refuses a small upload (read whole before sending) whose bytes do not match, sending nothing', async () => {
    await assertMismatchesRefused('/small-guarded', randomBytes(14));
  });

  it('drops an upload whose source stalls, leaving the stored file untouched', async () => {
    const original = Buffer.from('keep me');
    await client.putFile(charmId, '/stalled', {
      body: streamOf(original),
      size: original.length,
      mode: 0o644,
    });
    const impatient = createBackendClient({ backend, key, issuer: ISSUER, timeoutMs: 300 });
    try {
      const stalled = new Readable({ read() {} });
      stalled.push(Buffer.from('half'));
      await assert.rejects(
        impatient.putFile(charmId, '/stalled', { body: stalled, size: 100, mode: 0o644 }),
        BackendUnavailableError,
      );
      assert.equal(stalled.destroyed, true, 'the source is released');
      // A streamed upload (past the whole-upload size) whose source stalls half way.
      const stalledStream = new Readable({ read() {} });
      stalledStream.push(randomBytes(256 * 1024));
      await assert.rejects(
        impatient.putFile(charmId, '/stalled', { body: stalledStream, size: 1024 * 1024, mode: 0o644 }),
        BackendUnavailableError,
      );
      assert.equal(stalledStream.destroyed, true, 'the streamed source is released');
    } finally {
      impatient.close();
    }
    assert.deepEqual(readFileSync(userFiles('stalled')), original);
  });

  it('refuses a source cut before or during a streamed upload (a lost lock), leaving the stored file untouched', async () => {
    const original = randomBytes(3 * 1024 * 1024);
    await client.putFile(charmId, '/cut', { body: streamOf(original), size: original.length, mode: 0o644 });
    const before = statSync(userFiles('cut'));
    const cutBefore = streamOf(randomBytes(original.length));
    cutBefore.on('error', () => {});
    cutBefore.destroy(new Error('lock lost'));
    await new Promise((resolve) => cutBefore.once('close', resolve));
    await assert.rejects(
      client.putFile(charmId, '/cut', { body: cutBefore, size: original.length, mode: 0o644 }),
      /lock lost/,
    );
    // Closed half way without an error: the missing bytes must not pass for the end of the file.
    const cutDuring = new Readable({ read() {} });
    cutDuring.push(randomBytes(1024 * 1024));
    setImmediate(() => cutDuring.destroy());
    await assert.rejects(
      client.putFile(charmId, '/cut', { body: cutDuring, size: original.length, mode: 0o644 }),
      /closed before its end|premature close/i,
    );
    assert.deepEqual(readFileSync(userFiles('cut')), original);
    assert.equal(statSync(userFiles('cut')).mtimeMs, before.mtimeMs);
  });

  it('walks every file below a path and deletes recursively', async () => {
    const files = ['/tree/a', '/tree/b/c', '/tree/b/d/e', '/tree/f'];
    for (const [i, path] of files.entries()) {
      const bytes = Buffer.alloc(i + 1, i);
      await client.putFile(charmId, path, { body: streamOf(bytes), size: bytes.length, mode: 0o600 });
    }
    const walked = await collect(client.walkFiles(charmId, '/tree'));
    assert.deepEqual(
      walked.map(({ modifiedMs: _, ...file }) => file),
      files.map((path, i) => ({ path, size: i + 1, mode: 0o600 })),
    );
    // Each file's mtime as the server reports it (the healer compares copies with the manifest by it).
    const startedMs = Date.now() - 60_000;
    for (const file of walked) assert.ok(file.modifiedMs > startedMs && file.modifiedMs <= Date.now() + 1000);
    assert.deepEqual(
      (await collect(client.walkFiles(charmId, '/tree/b/d/e'))).map(({ modifiedMs: _, ...file }) => file),
      [{ path: '/tree/b/d/e', size: 3, mode: 0o600 }],
    );
    const everything = (await collect(client.walkFiles(charmId))).map((file) => file.path);
    assert.ok(everything.includes('/docs/a.txt') && everything.includes('/tree/b/d/e'), String(everything));

    await client.deletePath(charmId, '/tree/b/');
    assert.equal(existsSync(userFiles('tree', 'b')), false);
    assert.deepEqual(
      (await collect(client.walkFiles(charmId, '/tree'))).map((file) => file.path),
      ['/tree/a', '/tree/f'],
    );
    await client.deletePath(charmId, '/tree/b'); // already gone: still fine
    assert.deepEqual(await collect(client.walkFiles(charmId, '/tree/b')), []);
  });

  it('never mistakes a missing user for a missing file', async () => {
    const stranger = randomUUID();
    const isMissingUser = (err: unknown) => {
      assert.ok(err instanceof BackendHttpError, String(err));
      assert.equal(err.status, 404);
      assert.equal(err.missingUser, true, `${err.message} ${JSON.stringify(err.body)}`);
      assert.equal(err.body, `{"message":"missing user for id '${stranger}'"}\n`);
      return true;
    };
    await assert.rejects(client.getFile(stranger, '/docs/a.txt'), isMissingUser);
    await assert.rejects(client.stat(stranger, '/'), isMissingUser);
    await assert.rejects(collect(client.walkFiles(stranger)), isMissingUser);
    await assert.rejects(client.deletePath(stranger, '/x'), isMissingUser);
    // The server answers before reading the upload; its answer, not the broken pipe, is what the caller sees.
    const bytes = randomBytes(4 * 1024 * 1024);
    await assert.rejects(
      client.putFile(stranger, '/x', { body: streamOf(bytes), size: bytes.length, mode: 0o644 }),
      isMissingUser,
    );
  });

  it('refuses paths no request can name and modes that are not a file', async () => {
    await assert.rejects(client.getFile(charmId, '/a b'), RangeError);
    await assert.rejects(
      client.putFile(charmId, '/', { body: streamOf(Buffer.alloc(0)), size: 0, mode: 0o644 }),
      RangeError,
    );
    await assert.rejects(
      client.putFile(charmId, '/d', { body: streamOf(Buffer.alloc(0)), size: 0, mode: 0x80000000 + 0o755 }),
      RangeError,
    );
  });
});

describe('fs paths as the real charm server resolves them', () => {
  it('stores each upload under the path fsPathFromUrl computes', async () => {
    const token = mintCharmJwt({ key, issuer: ISSUER, charmId });
    const urls = [
      '/v1/fs//conf/x/../a?mode=420',
      '/v1/fs/conf/./b/?mode=420',
      '/v1/fs/../../conf/c?mode=420',
      '/v1/fs/conf/%41d?mode=420',
      '/v1/fs/conf/e%2Ff?mode=420',
      "/v1/fs/conf/g!$&'()*+,;=:@[]~?mode=420",
      '/v1/fs/conf/h"i?mode=420',
      '/v1/fs/conf/%41"j?mode=420',
      '/v1/fs/conf/k#l?mode=420',
      '/v1/fs/conf/m|n{o}?mode=420',
      '/v1/%66s/conf/p"?mode=420',
    ];
    for (const url of urls) {
      const expected = fsPathFromUrl(url);
      assert.ok(expected, url);
      const bytes = Buffer.from(url);
      const response = await rawUpload(url, bytes, token);
      assert.equal(response.status, 200, `${url}: ${response.body}`);
      assert.deepEqual(
        readFileSync(userFiles(...expected.path.slice(1).split('/'))),
        bytes,
        `${url} → ${expected.path}`,
      );
    }
  });

  it('answers what is not an fs route like fsPathFromUrl says', async () => {
    const token = mintCharmJwt({ key, issuer: ISSUER, charmId });
    for (const url of ['/v1/fs', '/v1/fsx/a', '/v1/%66s/a']) {
      assert.equal(fsPathFromUrl(url), undefined);
      const response = await raw('GET', url, { token });
      assert.deepEqual(
        [response.status, response.headers['content-type'], response.body],
        [404, 'text/plain; charset=utf-8', '404 page not found\n'],
        url,
      );
    }
    assert.equal(fsPathFromUrl('/v1/fs/a%zz'), undefined);
    assert.equal((await raw('GET', '/v1/fs/a%zz', { token })).status, 400);
  });
});

describe('BackendClient requests', () => {
  it('authenticate with one cached, verifiable token per user', async () => {
    const seen: { authorization: string | undefined; url: string | undefined }[] = [];
    const recorder = http.createServer((request, response) => {
      seen.push({ authorization: request.headers.authorization, url: request.url });
      response.writeHead(404, { 'Content-Type': 'application/json' });
      response.end('{"message":"file not found"}\n');
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    const address = recorder.address();
    assert.ok(address && typeof address === 'object');
    const recorded = createBackendClient({
      backend: { ...backend, httpUrl: `http://127.0.0.1:${address.port}` },
      key,
      issuer: ISSUER,
    });
    try {
      const other = randomUUID();
      assert.equal(await recorded.getFile(charmId, '/a'), undefined);
      assert.equal(await recorded.stat(charmId, '//b/./c/'), undefined);
      assert.equal(await recorded.getFile(other, '/a'), undefined);
      assert.deepEqual(
        seen.map((request) => request.url),
        ['/v1/fs/a', '/v1/fs/b/c', '/v1/fs/a'],
      );
      const [first, second, third] = seen.map((request) => request.authorization ?? '');
      assert.match(first ?? '', /^bearer [\w-]+\.[\w-]+\.[\w-]+$/);
      assert.equal(second, first);
      assert.notEqual(third, first);
      const claims = verifyCharmJwt(bearerToken(third), {
        publicKey: key.publicKey,
        kid: key.kid,
        issuer: ISSUER,
      });
      assert.equal(claims.charmId, other);
      assert.ok(claims.expiresAt <= Date.now() / 1000 + 300);
    } finally {
      recorded.close();
      recorder.close();
    }
  });
});

describe('BackendClient when the backend is unreachable', () => {
  let silent: Server;

  before(async () => {
    silent = createServer(() => {}); // accepts connections and never answers
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  });

  after(() => {
    silent.close();
  });

  it('gives up on a backend that never answers after timeoutMs', async () => {
    const address = silent.address();
    assert.ok(address && typeof address === 'object');
    const mute = createBackendClient({
      backend: { ...backend, httpUrl: `http://127.0.0.1:${address.port}` },
      key,
      issuer: ISSUER,
      timeoutMs: 200,
    });
    try {
      await assert.rejects(mute.stat(charmId, '/'), (err: unknown) => {
        assert.ok(err instanceof BackendUnavailableError);
        assert.match(err.message, /silent for 200 ms during GET \/v1\/fs\//);
        return true;
      });
    } finally {
      mute.close();
    }
  });

  it('reports a stopped backend as unavailable, with the cause', async () => {
    await charmBackend.process.stop();
    await assert.rejects(client.getFile(charmId, '/docs/a.txt'), (err: unknown) => {
      assert.ok(err instanceof BackendUnavailableError, String(err));
      assert.equal(err.backend, 'b1');
      assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNREFUSED');
      return true;
    });
    const bytes = Buffer.from('x');
    await assert.rejects(
      client.putFile(charmId, '/x', { body: streamOf(bytes), size: 1, mode: 0o644 }),
      BackendUnavailableError,
    );
  });

  it('reports a GET whose connection breaks before its body is read as unavailable, without crashing', async () => {
    const breaking = createServer((socket) => {
      socket.once('data', () => {
        socket.write(
          'HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nX-File-Mode: 420\r\nContent-Length: 1000000\r\n\r\npart',
        );
        setImmediate(() => socket.resetAndDestroy());
      });
    });
    await new Promise<void>((resolve) => breaking.listen(0, '127.0.0.1', resolve));
    const address = breaking.address();
    assert.ok(address && typeof address === 'object');
    const broken = createBackendClient({
      backend: { ...backend, httpUrl: `http://127.0.0.1:${address.port}` },
      key,
      issuer: ISSUER,
    });
    try {
      const file = await broken.getFile(charmId, '/f');
      assert.ok(file);
      const deadline = Date.now() + 5_000;
      while (!file.body.destroyed && Date.now() < deadline) await sleep(10);
      assert.equal(file.body.destroyed, true, 'the break reached the body before it was read');
      await assert.rejects(readAll(file.body), BackendUnavailableError);
    } finally {
      broken.close();
      breaking.close();
    }
  });

  it('can be closed twice and refuses work afterwards', async () => {
    client.close();
    client.close();
    await assert.rejects(client.stat(charmId, '/'), /closed/);
  });
});
