import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { prepareSpoolDir, spoolFilePrefix } from './spool-dir.ts';

describe('the spool folder', () => {
  it("removes a killed gateway's spool files at start and keeps a live one's", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A process that ran and died: its pid is free now.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    const deadFile = join(dir, `${spoolFilePrefix(dead.pid)}abc`);
    writeFileSync(deadFile, 'half an upload');
    const liveFile = join(dir, `${spoolFilePrefix(process.ppid)}def`); // our parent is alive
    writeFileSync(liveFile, 'in flight');
    const otherFile = join(dir, 'upload-0123abcd');
    writeFileSync(otherFile, 'not ours to judge');

    const { removed } = await prepareSpoolDir(dir, 999_999_999);
    assert.deepEqual(removed, [`${spoolFilePrefix(dead.pid)}abc`]);
    assert.equal(existsSync(deadFile), false);
    assert.equal(existsSync(liveFile), true);
    assert.equal(existsSync(otherFile), true);
  });

  it("removes its own process id's files at start: a previous run's (a container's gateway keeps its pid)", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'spool-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const previousRun = join(dir, `${spoolFilePrefix(1)}abc`);
    writeFileSync(previousRun, 'half an upload of the last run');
    const { removed } = await prepareSpoolDir(dir, 1);
    assert.deepEqual(removed, [`${spoolFilePrefix(1)}abc`]);
    assert.equal(existsSync(previousRun), false);
  });
});
