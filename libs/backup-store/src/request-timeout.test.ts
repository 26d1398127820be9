import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { createBackupStore } from './backup-store.ts';
import { BackupUnavailableError } from './errors.ts';

describe('a frozen S3', () => {
  it('fails a request after the timeout instead of holding it forever', { timeout: 20_000 }, async (t) => {
    // Accepts connections and never answers: what a SIGSTOPped S3 server looks like from here.
    const sockets: Socket[] = [];
    const server = createServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => {
      for (const socket of sockets) socket.destroy();
      server.close();
    });
    const { port } = server.address() as { port: number };
    const store = createBackupStore({
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      bucket: 'b',
      accessKeyId: 'k',
      secretAccessKey: 's',
      forcePathStyle: true,
      requestTimeoutMs: 500,
    });
    t.after(() => store.close());
    await assert.rejects(store.head('user', '/f'));
    // A backup PUT too (it is sent without the SDK): unavailable, with the body released.
    const body = Readable.from([Buffer.from('x')]);
    const sha256 = createHash('sha256').update('x').digest('hex');
    await assert.rejects(
      store.put('user', '/f', { body, size: 1, sha256, mode: 0o644, version: 1 }),
      (err: Error) => err instanceof BackupUnavailableError && /unreachable \(timeout\)/.test(err.message),
    );
    assert.ok(body.destroyed);
  });
});
