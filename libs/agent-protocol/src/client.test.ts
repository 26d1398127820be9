// The agent client's transport against real HTTP servers on port 0: deadlines, relayed refusals, cut answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import type { ServerKey } from '@cring/charm';
import { AgentRefusedError, AgentUnavailableError, createAgentClient } from './client.ts';

const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const key: ServerKey = { privateKey, publicKey, kid: randomBytes(32).toString('hex') };
const servers: Server[] = [];

async function agentAnswering(listener: RequestListener, timeoutMs = 30_000) {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return createAgentClient({ backend: 'b1', url, key, issuer: 'http://gw', timeoutMs });
}

after(() => {
  for (const server of servers) server.closeAllConnections();
  for (const server of servers) server.close();
});

describe('agent client', () => {
  it('reads an answer and sends the agent token', async () => {
    let authorization: string | undefined;
    const space = { freeBytes: 10, sizeBytes: 100, freePercent: 10, reserveBytes: 5, underReserve: false };
    const client = await agentAnswering((req, res) => {
      authorization = req.headers.authorization;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(space));
    });
    assert.deepEqual(await client.diskSpace(), space);
    assert.match(authorization ?? '', /^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it("relays the agent's own refusal (code and message)", async () => {
    const client = await agentAnswering((_req, res) => {
      res.statusCode = 409;
      res.end(JSON.stringify({ code: 'BACKEND_INIT_REFUSED', message: 'charm4 already holds 1 user' }));
    });
    await assert.rejects(
      client.diskSpace(),
      (err: unknown) =>
        err instanceof AgentRefusedError &&
        err.status === 409 &&
        err.code === 'BACKEND_INIT_REFUSED' &&
        err.message === 'agent of b1 answered 409: charm4 already holds 1 user',
    );
  });

  it('gives up on an agent that never answers, at the deadline', async () => {
    const client = await agentAnswering(() => {}, 300);
    await assert.rejects(
      client.diskSpace(),
      (err: unknown) =>
        err instanceof AgentUnavailableError && /no answer within the deadline/.test(err.message),
    );
  });

  it('gives up on an answer that stalls halfway, at the deadline', async () => {
    const client = await agentAnswering((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('{"freeBytes":');
    }, 300);
    await assert.rejects(
      client.diskSpace(),
      (err: unknown) => err instanceof AgentUnavailableError && /unreadable answer/.test(err.message),
    );
  });

  it('says so when the agent cuts its answer', async () => {
    const client = await agentAnswering((_req, res) => {
      res.setHeader('content-length', '1000');
      res.write('{"freeBytes":', () => res.socket?.destroy());
    });
    await assert.rejects(
      client.diskSpace(),
      (err: unknown) => err instanceof AgentUnavailableError && /unreadable answer/.test(err.message),
    );
  });

  it('refuses an unreadable answer', async () => {
    const client = await agentAnswering((_req, res) => res.end('not json'));
    await assert.rejects(
      client.diskSpace(),
      (err: unknown) => err instanceof AgentUnavailableError && /unreadable answer/.test(err.message),
    );
  });

  it('sends a safe call again, with a new token, when the agent had closed its pooled connection', async () => {
    const space = { freeBytes: 1, sizeBytes: 2, freePercent: 50, reserveBytes: 0, underReserve: false };
    const tokens: string[] = [];
    let n = 0;
    const client = await agentAnswering((req, res) => {
      tokens.push(String(req.headers.authorization));
      // The second request arrives on the first one's kept-alive connection: closed without an answer.
      if (++n === 2) {
        req.socket.destroy();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(n === 1 ? space : { results: [{ set: true }] }));
    });
    assert.deepEqual(await client.diskSpace(), space);
    const file = { charmId: '11111111-2222-3333-4444-555555555555', path: '/a', mtimeMs: 1, size: 1 };
    assert.deepEqual(await client.setModTimes([file]), [{ set: true }]);
    assert.equal(tokens.length, 3, 'answered on the second attempt');
    assert.equal(new Set(tokens).size, 3, 'every attempt carries a token of its own');
  });

  it('never sends an account merge twice', async () => {
    const space = { freeBytes: 1, sizeBytes: 2, freePercent: 50, reserveBytes: 0, underReserve: false };
    let n = 0;
    const client = await agentAnswering((req, res) => {
      if (++n === 2) {
        req.socket.destroy();
        return;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(space));
    });
    await client.diskSpace();
    await assert.rejects(
      client.apply({
        backend: 'b1',
        targets: new Map(),
        snapshot: new Map(),
        expectedMarker: null,
        now: new Date(),
      }),
      AgentUnavailableError,
    );
    assert.equal(n, 2, 'the merge went out once; its outcome stays unknown to the caller');
  });

  it("does not load Node's bundled undici (fetch would: ~12 MiB RSS in the gateway)", async () => {
    // A fresh process: a call, then whether undici is loaded.
    const script = `
      import { generateKeyPairSync } from 'node:crypto';
      import { createAgentClient } from ${JSON.stringify(import.meta.resolve('./client.ts'))};
      const { createServer } = process.getBuiltinModule('node:http');
      const server = createServer((req, res) => res.end('{}')).listen(0, '127.0.0.1');
      await new Promise((resolve) => server.once('listening', resolve));
      const { privateKey, publicKey } = generateKeyPairSync('ed25519');
      const url = 'http://127.0.0.1:' + server.address().port;
      const client = createAgentClient({ backend: 'b1', url, key: { privateKey, publicKey, kid: 'k' }, issuer: 'i' });
      const answer = await client.charmIds().catch((err) => err.message);
      server.close();
      console.log(JSON.stringify({ answer, undici: process.moduleLoadList.some((m) => m.includes('undici')) }));`;
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 60_000 }, (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    );
    const report = JSON.parse(out) as { answer: unknown; undici: boolean };
    // The call reached the server (whose empty object is not a user list), and fetch was not used for it.
    assert.match(String(report.answer), /user list/);
    assert.equal(report.undici, false);
  });
});
