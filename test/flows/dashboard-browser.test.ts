import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { backendQueueName, fileVersion, QUEUE_PREFIX, type ReplicateJob, S3_QUEUE } from '@cring/jobs';
import { Queue } from 'bullmq';
import type { Page } from 'playwright-core';
import { artifactPath, keepToLoopback, useBrowser } from '../harness/browser.ts';
import { newUser } from '../harness/clients.ts';
import { useCluster } from '../harness/cluster-fixture.ts';
import { clusterState } from '../harness/replicas.ts';

const ADMIN = { username: 'ops', password: 'correct horse' };
const FAILED_JOB_ID = 'replicate-wrong-checksum';

/** Polls `read` until it returns something truthy; fails with `what` after `timeoutMs`. */
async function waitFor<T>(what: string, read: () => Promise<T>, timeoutMs = 30_000): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

describe('admin dashboard in a browser', () => {
  it('an operator logs in, sees every queue and reads why a job failed', { timeout: 240_000 }, async (t) => {
    const cluster = await useCluster(t, {
      appEnv: { CRING_ADMIN_USER: ADMIN.username, CRING_ADMIN_PASSWORD: ADMIN.password },
    });
    const state = clusterState(cluster);
    const charm2Queue = new Queue(backendQueueName('charm2'), {
      connection: state.redis,
      prefix: QUEUE_PREFIX,
    });
    t.after(async () => {
      await charm2Queue.close();
      state.close();
    });

    // A file every backend holds, then damaged in place on every backend, and a copy job for it: no replica
    // matches the manifest's checksum any more, so the replicator fails the job for good (UnrecoverableError) on
    // its first attempt, with a message an operator can act on.
    const { charm, charmId } = await newUser(cluster, 'erin');
    const local = join(cluster.topology().runDir, 'report.txt');
    writeFileSync(local, 'quarterly report\n');
    await charm.run(['fs', 'cp', local, 'charm:/report.txt']);
    await state.waitForDrain(charmId);
    const [[path, entry] = []] = await state.manifest.entriesWithin(charmId); // the CLI encrypts paths
    assert.ok(path && entry?.kind === 'file', 'the gateway recorded the file');
    for (const backend of cluster.backends)
      writeFileSync(join(backend.info.dataDir, 'files', charmId, path), Buffer.alloc(entry.size, 'x'));
    const job: ReplicateJob = { kind: 'replicate', ...fileVersion(charmId, path, entry), sources: [] };
    await charm2Queue.add(job.kind, job, { jobId: FAILED_JOB_ID, attempts: 1 });
    const expectedError = `no source could provide version ${entry.version}`;
    const failedReason = await waitFor('the job to fail', async () => {
      const found = await charm2Queue.getJob(FAILED_JOB_ID);
      return (await found?.isFailed()) ? found?.failedReason : undefined;
    });
    assert.match(failedReason, new RegExp(`^${expectedError}: .*holds different bytes`));

    const browser = await useBrowser(t);
    const admin = `http://127.0.0.1:${cluster.gatewayPorts.adminPort}`;

    // Without credentials: the page load is answered 401 with a Basic challenge. (Headless Chromium has no login
    // prompt to show, so the navigation itself may end in ERR_INVALID_AUTH_CREDENTIALS; the response is what counts.)
    const anonymous = await browser.newContext();
    const anonymousPage = await anonymous.newPage();
    const [challenge] = await Promise.all([
      anonymousPage.waitForResponse(`${admin}/queues`),
      anonymousPage.goto(`${admin}/queues`).catch(() => undefined),
    ]);
    assert.equal(challenge.status(), 401);
    assert.match((await challenge.headerValue('www-authenticate')) ?? '', /^Basic/);
    await anonymous.close();

    // Wrong credentials: the browser gives up after one try and shows the 401 answer.
    const intruder = await browser.newContext({ httpCredentials: { ...ADMIN, password: 'wrong' } });
    const intruderPage = await intruder.newPage();
    assert.equal((await intruderPage.goto(`${admin}/queues`))?.status(), 401);
    await intruderPage.getByText('credentials required').waitFor();
    await intruder.close();

    const operator = await browser.newContext({
      httpCredentials: ADMIN,
      viewport: { width: 1400, height: 900 },
    });
    operator.setDefaultTimeout(30_000);
    await keepToLoopback(operator);
    const page = await operator.newPage();
    try {
      await operatorJourney(page, { admin, expectedError, t });
    } catch (err) {
      const path = artifactPath('dashboard-failure.png');
      await page.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`screenshot of the page when the test failed: ${path} (${page.url()})`);
      throw err;
    }
  });
});

async function operatorJourney(
  page: Page,
  { admin, expectedError, t }: { admin: string; expectedError: string; t: TestContext },
): Promise<void> {
  const landing = await page.goto(admin); // redirects to /queues
  assert.equal(landing?.status(), 200);
  assert.equal(new URL(page.url()).pathname.replace(/\/$/, ''), '/queues');

  // Every queue the dashboard serves, by name, on the overview; the cluster's own queues among them.
  const api = await page.request.get(`${admin}/queues/api/queues`);
  assert.equal(api.status(), 200);
  const served = ((await api.json()) as { queues: { name: string }[] }).queues.map((q) => q.name);
  for (const name of ['backend-charm1', 'backend-charm2', 'backend-charm3', S3_QUEUE]) {
    assert.ok(served.includes(name), `the dashboard serves ${name} (it serves ${served.join(', ')})`);
  }
  const overview = page.getByRole('main');
  for (const name of served) await overview.getByRole('link', { name, exact: true }).waitFor();
  // The failure is visible before opening anything: backend-charm2's card carries a Failed flag.
  await overview.getByRole('link', { name: /^Failed\s*1$/ }).waitFor();
  const queueList = artifactPath('dashboard-queues.png');
  await page.screenshot({ path: queueList, fullPage: true });
  t.diagnostic(`queue list screenshot: ${queueList}`);

  await overview.getByRole('link', { name: 'backend-charm2', exact: true }).click();
  await page.waitForURL(/\/queues\/queue\/backend-charm2(\?|$)/);
  await page.getByRole('link', { name: /^FAILED/ }).click();
  await page.waitForURL(/\/queues\/queue\/backend-charm2\?status=failed$/);

  await page.getByRole('link', { name: FAILED_JOB_ID, exact: true }).click();
  await page.waitForURL(new RegExp(`/queues/queue/backend-charm2/${FAILED_JOB_ID}(\\?|$)`));
  await page.getByRole('heading', { name: 'replicate', exact: true }).waitFor();
  await page.getByRole('tab', { name: 'Error', exact: true }).click();
  const errorPanel = page.getByRole('tabpanel', { name: 'Error' });
  await errorPanel.getByText(expectedError).waitFor();
  assert.match(
    // biome-ignore lint/performance/useDomNodeTextContent: Playwright's innerText is the text as a person sees it
    await errorPanel.innerText(),
    new RegExp(`UnrecoverableError: ${expectedError}: .*holds different bytes`),
  );
  const failedJob = artifactPath('dashboard-failed-job.png');
  await page.screenshot({ path: failedJob, fullPage: true });
  t.diagnostic(`failed job screenshot: ${failedJob}`);
}
