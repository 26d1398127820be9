import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { WriteIntent } from '@cring/manifest';
import { createRefusalJournal } from './refusal-journal.ts';

const opened: WriteIntent = {
  path: '/p',
  fence: 3,
  atMs: 1_000,
  owner: 'gateway-1',
  state: 'writing',
  touched: ['b1', 'b2'],
  previous: { kind: 'file', version: 2, sha256: 'ab', size: 1, mode: 420, holders: ['b1'], atMs: 900 },
};

function folder(t: TestContext) {
  const dir = mkdtempSync(join(tmpdir(), 'refusals-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function deadPid(): Promise<number> {
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => dead.once('exit', resolve));
  return dead.pid as number;
}

describe('the refusal journal', () => {
  it('writes a refusal down and removes it; a gateway that is gone leaves it to the next one', async (t) => {
    const dir = folder(t);
    const pid = await deadPid();
    const killed = createRefusalJournal(dir, pid);
    const handle = await killed.save({ charmId: 'u', opened, touched: ['b1'] });
    const text = readFileSync(join(dir, handle), 'utf8');
    assert.doesNotMatch(text, /bearer|authorization/i, 'no token is written down');

    // A live gateway sharing the folder (our parent) keeps its own; the dead one's is handed on.
    const live = createRefusalJournal(dir, process.ppid);
    await live.save({ charmId: 'v', opened, touched: ['b2'] });
    const next = createRefusalJournal(dir, 999_999_999);
    const { refusals, unreadable } = await next.leftovers();
    assert.deepEqual(unreadable, []);
    assert.equal(refusals.length, 1);
    assert.equal(refusals[0]?.handle, handle);
    assert.equal(refusals[0]?.refusal.charmId, 'u');
    assert.deepEqual(refusals[0]?.refusal.opened, opened);
    assert.deepEqual(refusals[0]?.refusal.touched, ['b1']);

    await next.remove(handle);
    assert.equal(existsSync(join(dir, handle)), false);
    assert.equal(readdirSync(dir).length, 1, "the live gateway's note stays");
  });

  it("takes its own process id's notes at start (a container's gateway is always the same pid)", async (t) => {
    const dir = folder(t);
    const previous = createRefusalJournal(dir, 7);
    await previous.save({ charmId: 'u', opened, touched: ['b1'] });
    assert.equal((await createRefusalJournal(dir, 7).leftovers()).refusals.length, 1);
  });

  it('removes a note a gateway did not finish writing, and leaves files that are not notes', async (t) => {
    const dir = folder(t);
    const pid = await deadPid();
    writeFileSync(join(dir, `refusal-${pid}-abcdef.json`), '{"charmId":"u","ope');
    writeFileSync(join(dir, `upload-${pid}-abc`), 'a spool file');
    const { refusals, unreadable } = await createRefusalJournal(dir, 1).leftovers();
    assert.deepEqual(refusals, []);
    assert.deepEqual(unreadable, [`refusal-${pid}-abcdef.json`]);
    assert.deepEqual(readdirSync(dir), [`upload-${pid}-abc`]);
  });

  it('makes the folder on first use, and a missing folder has no leftovers', async (t) => {
    const dir = join(folder(t), 'spool');
    assert.deepEqual((await createRefusalJournal(dir).leftovers()).refusals, []);
    await createRefusalJournal(dir).save({ charmId: 'u', opened, touched: ['b1'] });
    assert.equal(readdirSync(dir).length, 1);
  });
});
