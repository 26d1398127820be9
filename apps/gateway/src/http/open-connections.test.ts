import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { trackOpenConnections } from './open-connections.ts';

describe('trackOpenConnections', () => {
  it('lists a client connection with its answer in flight, and forgets it once closed', async (t) => {
    let answer: (() => void) | undefined;
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-length': '2' });
      res.write('o'); // the rest waits, so the answer is in flight
      answer = () => res.end('k');
    });
    const open = trackOpenConnections(server);
    const serverSide = once(server, 'connection') as Promise<[Socket]>;
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    t.after(() => server.close());
    const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
    await once(client, 'connect');
    client.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await once(client, 'data');

    const [state, ...others] = open(0);
    assert.equal(others.length, 0);
    assert.equal(state?.remotePort, client.localPort);
    assert.equal(state?.destroyed, false);
    assert.deepEqual(state?.response, {
      statusCode: 200,
      headersSent: true,
      writableEnded: false,
      writableFinished: false,
    });
    assert.deepEqual(open(60_000), [], 'not open that long');

    answer?.();
    const [socket] = await serverSide;
    client.end();
    await once(socket, 'close');
    assert.deepEqual(open(0), []);
  });
});
