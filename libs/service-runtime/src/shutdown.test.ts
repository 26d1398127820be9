import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pino from 'pino';
import { installShutdown } from './shutdown.ts';

const logger = pino({ level: 'silent' });

describe('installShutdown', () => {
  it('runs shutdown once and exits 128+signal', async () => {
    const target = new EventEmitter();
    const exits: number[] = [];
    let calls = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    installShutdown({
      logger,
      target: target as never,
      shutdown: async () => {
        calls++;
      },
      exit: (code) => {
        exits.push(code);
        done();
      },
    });
    target.emit('SIGTERM');
    target.emit('SIGINT');
    await finished;
    assert.equal(calls, 1);
    assert.deepEqual(exits, [143]);
  });

  it('exits 1 when shutdown fails, and at the deadline when it hangs', async () => {
    const exits: number[] = [];
    const failing = installShutdown({
      logger,
      target: new EventEmitter() as never,
      shutdown: async () => {
        throw new Error('boom');
      },
      exit: (code) => exits.push(code),
    });
    await failing.stop();
    assert.deepEqual(exits, [1]);

    let hungExit!: (code: number) => void;
    const hung = new Promise<number>((resolve) => (hungExit = resolve));
    installShutdown({
      logger,
      target: new EventEmitter() as never,
      deadlineMs: 20,
      shutdown: () => new Promise(() => {}),
      exit: hungExit,
    }).stop();
    assert.equal(await hung, 1);
  });
});
