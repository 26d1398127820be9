import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createLogger } from '@cring/service-runtime';
import { CHARM_MULTIPART_TEMP, createTempSweeper, openFilesFromProc } from './temp-sweeper.ts';

const logger = createLogger({ name: 'temp-sweeper-test', level: 'silent' });
const MIN_AGE_MS = 10 * 60_000;
const root = mkdtempSync(join(tmpdir(), 'cring-sweeper-'));
after(() => rmSync(root, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [file, content] of Object.entries(files)) writeFileSync(join(dir, file), content);
  return dir;
}

/** A sweeper whose clock runs `aheadMs` ahead, so files written just now look that old. */
const sweeper = (dir: string, aheadMs: number) =>
  createTempSweeper({
    dir,
    minAgeMs: MIN_AGE_MS,
    intervalMs: 60_000,
    logger,
    now: () => Date.now() + aheadMs,
  });

describe('temp sweeper', () => {
  it("matches only Go's mime/multipart temp names", () => {
    for (const name of ['multipart-1', 'multipart-4294967295']) assert.match(name, CHARM_MULTIPART_TEMP);
    for (const name of ['multipart-', 'multipart-12.tmp', 'xmultipart-1', 'multipart-abc', 'charm.db'])
      assert.doesNotMatch(name, CHARM_MULTIPART_TEMP);
  });

  it('never removes a young temp file: an upload may still be writing or reading it', async () => {
    const dir = folder('young', { 'multipart-123': 'x'.repeat(1000) });
    const result = await sweeper(dir, 0).sweepOnce();
    assert.deepEqual(result, { files: 0, bytes: 0, kept: 1, remainingBytes: 1000 });
    assert.ok(existsSync(join(dir, 'multipart-123')));
    // Just under the age: still kept.
    await sweeper(dir, MIN_AGE_MS - 5_000).sweepOnce();
    assert.ok(existsSync(join(dir, 'multipart-123')));
  });

  it('removes old temp files and never anything else in the folder', async () => {
    const others = ['charm.db', 'multipart-12.tmp', 'multipart-', 'go-build123', 'xmultipart-5'];
    const dir = folder('mixed', {
      'multipart-111': 'a'.repeat(300),
      'multipart-222': 'b'.repeat(700),
      ...Object.fromEntries(others.map((name) => [name, 'keep me'])),
    });
    mkdirSync(join(dir, 'multipart-333'));
    symlinkSync(join(dir, 'charm.db'), join(dir, 'multipart-444'));
    const result = await sweeper(dir, MIN_AGE_MS + 60_000).sweepOnce();
    assert.deepEqual(result, { files: 2, bytes: 1000, kept: 0, remainingBytes: 0 });
    for (const name of ['multipart-111', 'multipart-222']) assert.equal(existsSync(join(dir, name)), false);
    for (const name of [...others, 'multipart-333', 'multipart-444'])
      assert.ok(existsSync(join(dir, name)), `${name} was left alone`);
  });

  it('keeps an old temp file that a process still holds open (a server still copying it)', async () => {
    const dir = folder('open', { 'multipart-555': 'c'.repeat(50), 'multipart-666': 'd'.repeat(70) });
    const fd = openSync(join(dir, 'multipart-555'), 'r');
    try {
      assert.ok((await openFilesFromProc()).has(join(dir, 'multipart-555')), '/proc shows our own fd');
      const result = await sweeper(dir, MIN_AGE_MS + 60_000).sweepOnce();
      assert.deepEqual(result, { files: 1, bytes: 70, kept: 1, remainingBytes: 50 });
      assert.ok(existsSync(join(dir, 'multipart-555')));
    } finally {
      closeSync(fd);
    }
    const later = await sweeper(dir, MIN_AGE_MS + 60_000).sweepOnce();
    assert.equal(later.files, 1, 'removed once closed');
  });
});
