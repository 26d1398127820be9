import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { prepareSpoolDir } from './spool-dir.ts';

describe('the spool folder', () => {
  it("removes a killed gateway's spool files at start and keeps a live one's", async (t) => {
    const base = mkdtempSync(join(tmpdir(), 'spool-'));
    t.after(() => rmSync(base, { recursive: true, force: true }));
    // A process that ran and died: its pid is free now.
    const dead = spawn(process.execPath, ['-e', '']);
    await new Promise((resolve) => dead.once('exit', resolve));
    const deadDir = join(base, `pid-${dead.pid}`);
    mkdirSync(deadDir);
    writeFileSync(join(deadDir, 'upload-abc'), 'half an upload');
    writeFileSync(join(base, 'upload-loose'), 'older layout');
    const liveDir = join(base, `pid-${process.ppid}`); // our parent is alive
    mkdirSync(liveDir);
    writeFileSync(join(liveDir, 'upload-live'), 'in flight');

    const { dir, removed } = await prepareSpoolDir(base, 999_999_999);
    assert.deepEqual(removed.sort(), [`pid-${dead.pid}`, 'upload-loose'].sort());
    assert.equal(existsSync(deadDir), false);
    assert.equal(existsSync(join(liveDir, 'upload-live')), true);
    assert.equal(dir, join(base, 'pid-999999999'));
    assert.equal(existsSync(dir), true);
  });
});
