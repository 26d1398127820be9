import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { findOnPath, repoRoot } from '@cring/local-cluster';
import { type Browser, type BrowserContext, chromium } from 'playwright-core';

/** Screenshots and other files a test keeps, whether it passed or not (gitignored with the rest of .cring/). */
export const ARTIFACTS_DIR = join(repoRoot, '.cring', 'artifacts');

/**
 * Headless Chromium for one test, closed when the test ends. Playwright gives every launch a new, empty
 * user-data-dir and adds --headless and --no-sandbox (we run as root); the network flags keep Chromium from
 * calling out of this closed machine.
 */
export async function useBrowser(t: TestContext): Promise<Browser> {
  const browser = await chromium.launch({
    // Debian's Chromium (`npm run setup` installs it): test tools cannot download a browser on these machines.
    executablePath: findOnPath('chromium'),
    headless: true,
    chromiumSandbox: false,
    timeout: 60_000,
    args: [
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.after(() => browser.close());
  return browser;
}

/** Fails every request that would leave loopback (Bull Board links web fonts), so pages never wait on them. */
export async function keepToLoopback(context: BrowserContext): Promise<void> {
  await context.route(
    (url) => !['127.0.0.1', 'localhost', '[::1]'].includes(url.hostname),
    (route) => route.abort('blockedbyclient'),
  );
}

/** Where to write an artifact named `name`; creates the folder. */
export function artifactPath(name: string): string {
  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  return join(ARTIFACTS_DIR, name);
}
