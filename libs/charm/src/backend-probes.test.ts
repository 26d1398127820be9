import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, before, describe, it } from 'node:test';
import { findBinaries, freePorts } from '@cring/local-cluster';
import ssh2 from 'ssh2';
import { type CharmBackend, createCharmBackend } from '../../../tools/local-cluster/src/charm-backend.ts';
import { generateSshKeyPair, ProbeError, probeHttp, probeSsh } from './backend-probes.ts';
import type { Backend } from './backends.ts';

const TIMEOUT_MS = 3_000;

/** TCP sockets of this process (a destroyed socket's handle is released a loop turn after its 'close'). */
async function openTcpSockets(): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, 20));
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
}

describe('health probes against a real charm server', () => {
  let runDir: string;
  let charm: CharmBackend;
  let backend: Backend;

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'cring-probes-'));
    const [issuerPort] = (await freePorts(1)) as [number];
    charm = await createCharmBackend({
      name: 'probed',
      charmBin: findBinaries().charm,
      runDir,
      publicUrl: `http://127.0.0.1:${issuerPort}`,
    });
    backend = {
      name: charm.info.name,
      httpUrl: charm.info.httpUrl,
      sshHost: '127.0.0.1',
      sshPort: charm.info.sshPort,
    };
    await charm.process.start();
  });

  after(async () => {
    await charm?.process.stop();
    rmSync(runDir, { recursive: true, force: true });
  });

  it('both probes pass while the server runs, leave no socket open and create no user', async () => {
    const before = await openTcpSockets();
    await probeHttp(backend, TIMEOUT_MS);
    await probeSsh(backend, TIMEOUT_MS);
    // Twice: the ephemeral key is reused, and a second handshake works as well as the first.
    await probeSsh(backend, TIMEOUT_MS);
    // The launcher's readiness check may still hold a keep-alive socket; the probes must add none.
    assert.ok((await openTcpSockets()) <= before, 'the probes closed their sockets');

    const db = new DatabaseSync(join(charm.info.dataDir, 'db', 'charm_sqlite.db'), { readOnly: true });
    try {
      assert.equal(db.prepare('SELECT count(*) AS n FROM charm_user').get()?.n, 0);
      assert.equal(db.prepare('SELECT count(*) AS n FROM public_key').get()?.n, 0);
    } finally {
      db.close();
    }
  });

  it('the SSH probe rejects a TCP server that is not SSH, and closes its connection', async () => {
    const connections = new Set<Socket>();
    const server = createServer((socket) => {
      connections.add(socket);
      socket.once('close', () => connections.delete(socket));
      socket.on('error', () => {});
      socket.write('220 mail.example.com ESMTP ready\r\n');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      await assert.rejects(
        probeSsh({ ...backend, sshPort: port }, TIMEOUT_MS),
        (err: unknown) =>
          err instanceof ProbeError &&
          err.probe === 'ssh' &&
          /^SSH probe of 127\.0\.0\.1:\d+ failed: not an SSH server: it said "220 mail/.test(err.message),
      );
      // The probe is done only once its socket is closed; the server sees it go soon after.
      for (let i = 0; i < 50 && connections.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(connections.size, 0);
    } finally {
      server.close();
    }
  });

  it('the SSH probe times out on a server that says nothing', async () => {
    const accepted = new Set<Socket>();
    const server = createServer((socket) => {
      accepted.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      await assert.rejects(
        probeSsh({ ...backend, sshPort: port }, 300),
        /failed: no answer within 300 ms while waiting for the SSH identification line/,
      );
    } finally {
      for (const socket of accepted) socket.destroy();
      server.close();
    }
  });

  it('both probes fail with a clear message once the server is stopped', async () => {
    await charm.process.stop(2_000); // a short grace: stop() keeps the event loop alive for the whole grace
    const before = await openTcpSockets();
    await assert.rejects(probeHttp(backend, TIMEOUT_MS), (err: unknown) => {
      assert.ok(err instanceof ProbeError);
      assert.equal(err.probe, 'http');
      assert.match(err.message, /^GET http:\/\/127\.0\.0\.1:\d+\/v1\/public\/jwks failed: .*ECONNREFUSED/);
      return true;
    });
    await assert.rejects(probeSsh(backend, TIMEOUT_MS), (err: unknown) => {
      assert.ok(err instanceof ProbeError);
      assert.equal(err.probe, 'ssh');
      assert.match(err.message, /^SSH probe of 127\.0\.0\.1:\d+ failed: .*ECONNREFUSED/);
      return true;
    });
    assert.ok((await openTcpSockets()) <= before, 'the probes closed their sockets');
  });
});

describe('generated SSH keys', () => {
  it('always parses (ssh2 generates an unparseable ed25519 key about once in 200)', () => {
    for (let i = 0; i < 2000; i++) {
      const parsed = ssh2.utils.parseKey(generateSshKeyPair().private);
      assert.ok(!(parsed instanceof Error), `key ${i}: ${(parsed as Error).message}`);
    }
  });
});
