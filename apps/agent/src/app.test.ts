import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createMemoryAccountBaseStore,
  readAllAccounts,
  readMarker,
  SERVER_KEY_FILE,
  syncAccounts,
} from '@cring/accounts';
import { charmCreateUser, createTestDbs } from '@cring/accounts/test-charm-db';
import {
  type AgentClient,
  AgentRefusedError,
  AgentUnavailableError,
  createAgentClient,
  mintAgentToken,
  SHA256_HEADER,
  verifyAgentToken,
} from '@cring/agent-protocol';
import { loadServerKey, mintCharmJwt, type ServerKey } from '@cring/charm';
import { createLogger } from '@cring/service-runtime';
import type { FastifyInstance } from 'fastify';
import { buildAgentApp } from './app.ts';
import { readDiskSpace } from './disk-space.ts';

const ISSUER = 'http://gateway.test:35354';
const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const dbs = createTestDbs(['a', 'b', 'fresh']);
after(() => dbs.cleanup());

function keygen(dir: string): string {
  mkdirSync(join(dir, '.ssh'), { recursive: true, mode: 0o700 });
  const file = join(dir, SERVER_KEY_FILE);
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', '', '-f', file]);
  return file;
}

describe('agent', () => {
  const apps: FastifyInstance[] = [];
  const clients = new Map<string, AgentClient>();
  let key: ServerKey;
  let keyFile: string;
  let otherKey: ServerKey;

  before(async () => {
    keyFile = keygen(join(dbs.dir, 'a'));
    key = loadServerKey(keyFile);
    otherKey = loadServerKey(keygen(join(dbs.dir, 'other')));
    for (const backend of dbs.backends) {
      const app = buildAgentApp({
        backend,
        verify: (token) =>
          verifyAgentToken(token, {
            publicKey: key.publicKey,
            kid: key.kid,
            issuer: ISSUER,
            backend: backend.name,
          }),
        serverKeyFile: keyFile,
        maxDbBytes: 10 * 1024 * 1024,
        logger: createLogger({ name: 'agent-test', level: 'silent' }),
        // `fresh` keeps more free space than any volume has: it is always under its reserve.
        diskSpace: () =>
          readDiskSpace(backend.dataDir, { percent: 5, bytes: backend.name === 'fresh' ? 2 ** 50 : 0 }),
      });
      await app.listen({ host: '127.0.0.1', port: 0 });
      apps.push(app);
      const address = app.server.address();
      const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
      // A transfer that gets no answer fails the test in seconds, not after the default 10 minutes.
      clients.set(
        backend.name,
        createAgentClient({ backend: backend.name, url, key, issuer: ISSUER, transferTimeoutMs: 20_000 }),
      );
    }
  });
  after(async () => {
    for (const app of apps) await app.close();
  });
  const client = (name: string) => clients.get(name) ?? assert.fail(`no agent ${name}`);
  const portOf = (name: string) => {
    const address = apps[dbs.backends.findIndex((b) => b.name === name)]?.server.address();
    return typeof address === 'object' && address ? address.port : assert.fail(`no agent ${name}`);
  };
  /** A JSON POST to agent b with a fresh agent token, as the client would send it, but any body. */
  const postToB = (path: string, body: unknown) => {
    return fetch(`http://127.0.0.1:${portOf('b')}${path}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${mintAgentToken({ key, issuer: ISSUER, backend: 'b' })}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
  };
  const open = (name: string) => dbs.open(name);

  it('runs a sync round over the network: a user created on one backend reaches the other', async () => {
    const db = open('a');
    charmCreateUser(db, U1, 'ssh-ed25519 AAAAkey1');
    db.close();
    const store = createMemoryAccountBaseStore();
    const backends = [client('a'), client('b')];
    await syncAccounts({ backends, store });
    const report = await syncAccounts({ backends, store });
    assert.deepEqual(report.untrusted, [], 'both adopted');
    const onB = open('b');
    try {
      assert.deepEqual([...readAllAccounts(onB).keys()], [U1]);
    } finally {
      onB.close();
    }
    assert.deepEqual(await client('b').charmIds(), [U1]);
    assert.equal(await client('b').knowsUser(U1), true);
    assert.equal(await client('b').knowsUser(U2), false);
  });

  it('refuses every token that is not a live, unused agent token for this backend', async () => {
    const address = apps[0]?.server.address();
    const url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/v1/users`;
    const refused = async (authorization: string | undefined, code: string) => {
      const response = await fetch(url, { headers: authorization ? { authorization } : {} });
      assert.equal(response.status, 401);
      assert.equal(((await response.json()) as { code: string }).code, code);
    };
    await refused(undefined, 'TOKEN_MISSING');
    const userToken = mintCharmJwt({ key, issuer: ISSUER, charmId: U1 });
    await refused(`Bearer ${userToken}`, 'TOKEN_AUDIENCE');
    const both = mintCharmJwt({
      key,
      issuer: ISSUER,
      charmId: 'agent:a',
      audience: ['charm', 'cring-agent'],
    });
    await refused(`Bearer ${both}`, 'TOKEN_AUDIENCE');
    const noId = mintCharmJwt({ key, issuer: ISSUER, charmId: 'agent:a', audience: ['cring-agent'] });
    await refused(`Bearer ${noId}`, 'TOKEN_MALFORMED');
    const once = mintAgentToken({ key, issuer: ISSUER, backend: 'a' });
    assert.equal((await fetch(url, { headers: { authorization: `Bearer ${once}` } })).status, 200);
    await refused(`Bearer ${once}`, 'TOKEN_REPLAYED');
    const forB = mintCharmJwt({ key, issuer: ISSUER, charmId: 'agent:b', audience: ['cring-agent'] });
    await refused(`Bearer ${forB}`, 'TOKEN_SUBJECT');
    const otherCluster = mintCharmJwt({
      key: otherKey,
      issuer: ISSUER,
      charmId: 'agent:a',
      audience: ['cring-agent'],
    });
    await refused(`Bearer ${otherCluster}`, 'TOKEN_KID');
    const expired = mintCharmJwt({
      key,
      issuer: ISSUER,
      charmId: 'agent:a',
      audience: ['cring-agent'],
      nowSeconds: Date.now() / 1000 - 120,
      ttlSeconds: 60,
    });
    await refused(`Bearer ${expired}`, 'TOKEN_EXPIRED');
  });

  it('refuses an apply plan meant for another backend, and a malformed one, writing nothing', async () => {
    const post = (body: unknown) => postToB('/v1/accounts/apply', body);
    const plan = {
      backend: 'a',
      targets: [[U2, null]],
      snapshot: [],
      expectedMarker: null,
      now: new Date().toISOString(),
    };
    const wrong = await post(plan);
    assert.equal(wrong.status, 400);
    assert.equal(((await wrong.json()) as { code: string }).code, 'WRONG_BACKEND');
    const malformed = await post({ ...plan, backend: 'b', targets: [[U2, { charmId: U2 }]] });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { code: string }).code, 'BAD_PAYLOAD');
    assert.equal(await client('b').knowsUser(U1), true, 'nothing was deleted');
  });

  it('prepares a new backend from another over the network, and refuses to overwrite one with users', async () => {
    const file = join(dbs.dir, 'snapshot.db');
    const copy = await client('a').downloadAccountsDb(file);
    assert.ok(copy.size > 0);
    await client('fresh').uploadAccountsDb('init', join(dbs.dir, 'snapshot.db'));
    const fresh = open('fresh');
    try {
      assert.deepEqual([...readAllAccounts(fresh).keys()], [U1]);
      assert.ok(readMarker(fresh), 'a fresh marker: untrusted until adopted');
    } finally {
      fresh.close();
    }
    const freshKey = join(dbs.dir, 'fresh', SERVER_KEY_FILE);
    assert.deepEqual(readFileSync(freshKey), readFileSync(keyFile), 'the cluster key was installed');
    assert.equal(statSync(freshKey).mode & 0o777, 0o600);

    await client('a').downloadAccountsDb(file);
    await assert.rejects(
      client('fresh').uploadAccountsDb('init', file),
      (err: unknown) =>
        err instanceof AgentRefusedError && err.status === 409 && /already holds 1 user/.test(err.message),
    );
    await assert.rejects(
      client('fresh').uploadAccountsDb('restore', file),
      (err: unknown) => err instanceof AgentRefusedError && err.code === 'BACKEND_INIT_REFUSED',
    );
    writeFileSync(file, Buffer.alloc(11 * 1024 * 1024));
    await assert.rejects(
      client('fresh').uploadAccountsDb('restore', file, { force: true }),
      (err: unknown) => err instanceof AgentRefusedError && err.status === 413 && err.code === 'TOO_LARGE',
      'an upload above the cap is answered 413 and replaces nothing',
    );
    writeFileSync(file, Buffer.alloc(21 * 1024 * 1024));
    await assert.rejects(
      client('fresh').uploadAccountsDb('restore', file, { force: true }),
      (err: unknown) =>
        (err instanceof AgentRefusedError && err.code === 'TOO_LARGE') ||
        (err instanceof AgentUnavailableError && !/timeout/i.test(err.message)),
      'an upload above twice the cap gets the 413 or a closed connection, never a wait for the timeout',
    );
    writeFileSync(file, 'not a database');
    await assert.rejects(
      client('fresh').uploadAccountsDb('restore', file, { force: true }),
      (err: unknown) => err instanceof AgentRefusedError && /not a charm account DB/.test(err.message),
    );
    const stillThere = open('fresh');
    try {
      assert.deepEqual([...readAllAccounts(stillThere).keys()], [U1], 'the refused uploads replaced nothing');
    } finally {
      stillThere.close();
    }
  });

  it('reads an account DB upload past the cap to its end: the 413 is heard and the connection serves the next request', async () => {
    // Raw HTTP/1.1 on one connection, so the test sees what the agent does with the bytes past the cap. While it
    // stopped reading there, the connection stalled until the keep-alive timeout (72 s), and a sender still
    // writing its body (the agent client's fetch) missed the 413 now and then: it waited, then read a reset.
    const socket = connect(portOf('fresh'), '127.0.0.1');
    const answers: string[] = [];
    let received = '';
    const answered = (n: number) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          const statuses = received.match(/HTTP\/1\.1 \d{3}/g) ?? [];
          if (statuses.length >= n) {
            answers.splice(0, answers.length, ...statuses);
            socket.off('data', onData);
            clearTimeout(deadline);
            resolve();
          }
        };
        const onData = (chunk: Buffer) => {
          received += chunk.toString('latin1');
          check();
        };
        const deadline = setTimeout(
          () => reject(new Error(`${n} answers expected within 10 s, got: ${JSON.stringify(received)}`)),
          10_000,
        );
        socket.on('data', onData);
        check();
      });
    try {
      const body = Buffer.alloc(11 * 1024 * 1024);
      socket.write(
        'PUT /v1/accounts-db?mode=restore&force=true HTTP/1.1\r\nHost: agent\r\n' +
          `Authorization: Bearer ${mintAgentToken({ key, issuer: ISSUER, backend: 'fresh' })}\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\n` +
          `${SHA256_HEADER}: ${'0'.repeat(64)}\r\n\r\n`,
      );
      socket.write(body);
      await answered(1);
      assert.deepEqual(answers, ['HTTP/1.1 413']);
      socket.write(
        'GET /v1/disk HTTP/1.1\r\nHost: agent\r\n' +
          `Authorization: Bearer ${mintAgentToken({ key, issuer: ISSUER, backend: 'fresh' })}\r\n\r\n`,
      );
      await answered(2);
      assert.deepEqual(
        answers,
        ['HTTP/1.1 413', 'HTTP/1.1 200'],
        'the same connection answers the next request',
      );
    } finally {
      socket.destroy();
    }
  });

  it("reports its backend's free space and reserve over the network", async () => {
    const space = await client('a').diskSpace();
    assert.ok(space.sizeBytes > 0 && space.freeBytes <= space.sizeBytes, JSON.stringify(space));
    assert.ok(space.freePercent >= 0 && space.freePercent <= 100);
    assert.equal(space.reserveBytes, Math.ceil(space.sizeBytes * 0.05), '5% of the volume');
    assert.equal(space.underReserve, space.freeBytes < space.reserveBytes);
    const full = await client('fresh').diskSpace();
    assert.equal(full.reserveBytes, 2 ** 50, 'the byte reserve wins when it is the larger');
    assert.equal(full.underReserve, true);
  });

  it("sets a replica's modification time only on that copy, inside the user's tree", async () => {
    const dir = join(dbs.dir, 'b', 'files', U1, 'notes');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'hello');
    utimesSync(file, new Date(), new Date());
    const mtimeMs = Date.parse('2026-01-02T03:04:05.000Z');
    const other = join(dir, 'b.txt');
    writeFileSync(other, 'hi');
    const otherMtimeMs = Date.parse('2026-01-03T00:00:00.000Z');
    // One call for several copies: each refusal is its own (with the agent's reason), the rest are still set.
    const answers = await client('b').setModTimes([
      { charmId: U1, path: '/notes/a.txt', mtimeMs, size: 5 },
      { charmId: U1, path: '/notes/a.txt', mtimeMs: 0, size: 6 },
      { charmId: U1, path: '/notes', mtimeMs: 0, size: 0 },
      { charmId: U1, path: '/nothing', mtimeMs: 0, size: 0 },
      { charmId: U1, path: '/notes/b.txt', mtimeMs: otherMtimeMs, size: 2 },
    ]);
    assert.deepEqual(answers[0], { set: true });
    assert.deepEqual(answers[4], { set: true });
    assert.match((answers[1] as { message: string }).message, /another version/);
    assert.match((answers[2] as { message: string }).message, /not a regular file/);
    assert.match((answers[3] as { message: string }).message, /no file/);
    assert.equal((answers[3] as { code: string }).code, 'NOT_THAT_FILE');
    assert.equal(statSync(file).mtimeMs, mtimeMs);
    assert.equal(statSync(other).mtimeMs, otherMtimeMs);
    const refused = async (request: Parameters<AgentClient['setModTimes']>[0][number], pattern: RegExp) => {
      const [answer] = await client('b').setModTimes([request]);
      assert.ok(answer && 'message' in answer && pattern.test(answer.message), JSON.stringify(answer));
    };
    // `..` is cleaned the way the server cleans it: it can never leave the user's tree.
    writeFileSync(join(dbs.dir, 'b', 'files', 'secret'), 'x');
    await refused({ charmId: U1, path: '/../../secret', mtimeMs: 0, size: 1 }, /no file/);
    await refused({ charmId: U1, path: '/', mtimeMs: 0, size: 0 }, /not a file path/);
    // A malformed call (no files, or too many) is refused whole, with the protocol's reason.
    await assert.rejects(
      client('b').setModTimes([]),
      (err: unknown) => err instanceof AgentRefusedError && err.status === 400,
    );
    assert.equal(statSync(file).mtimeMs, mtimeMs, 'refusals changed nothing');

    // The one-file call of replicators older than the several-files one still works (agents upgrade first).
    const oneFile = (body: unknown) => postToB('/v1/files/mtime', body);
    const earlier = Date.parse('2025-12-31T00:00:00.000Z');
    assert.equal(
      (await oneFile({ charmId: U1, path: '/notes/a.txt', mtimeMs: earlier, size: 5 })).status,
      204,
    );
    assert.equal(statSync(file).mtimeMs, earlier);
    const wrongSize = await oneFile({ charmId: U1, path: '/notes/a.txt', mtimeMs: 0, size: 6 });
    assert.equal(wrongSize.status, 409);
    assert.match(((await wrongSize.json()) as { message: string }).message, /another version/);
    assert.equal(statSync(file).mtimeMs, earlier, 'the refusal changed nothing');
  });
});
