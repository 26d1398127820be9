// What the gateway loads at start-up: modules it holds for its whole life, whether it uses them or not.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

// Reports, as the process exits, whether Node's bundled undici (fetch, WebSocket) was loaded.
const REPORT_AT_EXIT =
  "process.on('exit', () => process.stderr.write('UNDICI=' + process.moduleLoadList.some((m) => m.includes('undici')) + '\\n'));";

/** Runs node with `args` after the exit reporter; resolves with whether undici was loaded. */
function undiciLoaded(args: string[]): Promise<boolean> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', `data:text/javascript,${encodeURIComponent(REPORT_AT_EXIT)}`, ...args],
      // No settings: main.ts links every static import, then refuses its configuration and exits.
      { env: { PATH: process.env.PATH ?? '' }, timeout: 60_000 },
      (err, _stdout, stderr) => {
        const reported = /UNDICI=(true|false)/.exec(stderr)?.[1];
        if (reported === undefined) reject(new Error(`no report (${err?.message}): ${stderr}`));
        else resolve(reported === 'true');
      },
    );
  });
}

describe('start-up loading', () => {
  it("does not load Node's bundled undici (an ESM import of node:http would, ~12 MiB RSS)", async () => {
    // The probe itself: an ESM import of node:http loads it.
    assert.equal(await undiciLoaded(['--input-type=module', '-e', "import 'node:http';"]), true);
    assert.equal(await undiciLoaded([join(import.meta.dirname, 'main.ts')]), false);
  });
});
