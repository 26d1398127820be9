import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AgentClient,
  AgentUnavailableError,
  MAX_MOD_TIMES_PER_CALL,
  type ModTimeRequest,
  type ModTimeResult,
} from '@cring/agent-protocol';
import { createModTimeSender } from './mod-time.ts';

const U = '11111111-2222-3333-4444-555555555555';
const file = (i: number): ModTimeRequest => ({ charmId: U, path: `/f${i}`, mtimeMs: 1_000 + i, size: i });

/** An agent whose calls stay open until the test answers them. */
function heldAgent() {
  const calls: { files: ModTimeRequest[]; answer: (r: ModTimeResult[] | Error) => void }[] = [];
  let arrived: (() => void) | undefined;
  const agent = {
    setModTimes(files: readonly ModTimeRequest[]) {
      return new Promise<ModTimeResult[]>((resolve, reject) => {
        calls.push({ files: [...files], answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
        arrived?.();
      });
    },
  } as unknown as AgentClient;
  const nextCall = async (n: number) => {
    while (calls.length < n) await new Promise<void>((resolve) => (arrived = resolve));
    return calls[n - 1] as (typeof calls)[number];
  };
  return { agent, calls, nextCall };
}

describe('modification times sent to agents', () => {
  it('sends the files that arrive while a call is in flight together, each caller hearing its own result', async () => {
    const { agent, nextCall } = heldAgent();
    const sender = createModTimeSender((backend) => (backend === 'b' ? agent : undefined));
    const first = sender.send('b', file(0));
    const firstCall = await nextCall(1);
    assert.deepEqual(firstCall.files, [file(0)], 'the first file goes at once, alone');
    const later = [1, 2, 3].map((i) => sender.send('b', file(i)));
    firstCall.answer([{ set: true }]);
    await first;
    const secondCall = await nextCall(2);
    assert.deepEqual(secondCall.files, [file(1), file(2), file(3)], 'one call for the three that waited');
    secondCall.answer([
      { set: true },
      { code: 'NOT_THAT_FILE', message: '/f2 has 9 bytes here' },
      { set: true },
    ]);
    const settled = await Promise.allSettled(later);
    assert.equal(settled[0]?.status, 'fulfilled');
    assert.equal(settled[2]?.status, 'fulfilled');
    assert.equal(settled[1]?.status, 'rejected');
    assert.match(String((settled[1] as PromiseRejectedResult).reason), /\/f2 has 9 bytes here/);
  });

  it('fails only the files of a call that failed, and goes on with the next', async () => {
    const { agent, nextCall } = heldAgent();
    const sender = createModTimeSender(() => agent);
    const first = sender.send('b', file(0));
    const second = sender.send('b', file(1));
    (await nextCall(1)).answer(new AgentUnavailableError('b', 'connection refused'));
    await assert.rejects(first, AgentUnavailableError);
    (await nextCall(2)).answer([{ set: true }]);
    await second;
  });

  it('splits a backlog into calls of at most MAX_MOD_TIMES_PER_CALL files, and keeps agents apart', async () => {
    const { agent, calls, nextCall } = heldAgent();
    const other = heldAgent();
    const sender = createModTimeSender((backend) => (backend === 'b' ? agent : other.agent));
    const first = sender.send('b', file(0));
    const onOther = sender.send('c', file(0));
    const backlog = Array.from({ length: MAX_MOD_TIMES_PER_CALL + 1 }, (_, i) =>
      sender.send('b', file(i + 1)),
    );
    (await other.nextCall(1)).answer([{ set: true }]);
    await onOther;
    (await nextCall(1)).answer([{ set: true }]);
    await first;
    const full = await nextCall(2);
    assert.equal(full.files.length, MAX_MOD_TIMES_PER_CALL);
    full.answer(full.files.map(() => ({ set: true })));
    const rest = await nextCall(3);
    assert.deepEqual(rest.files, [file(MAX_MOD_TIMES_PER_CALL + 1)]);
    rest.answer([{ set: true }]);
    await Promise.all(backlog);
    assert.equal(calls.length, 3);
  });

  it('does nothing for a backend without an agent', async () => {
    const sender = createModTimeSender(() => undefined);
    await sender.send('b', file(0));
  });
});
