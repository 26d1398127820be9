import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend } from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import { type BackendHealth, createHealthMonitor, type Probe } from './health-monitor.ts';

const backends: Backend[] = ['b1', 'b2', 'b3'].map((name, i) => ({
  name,
  httpUrl: `http://127.0.0.1:${4001 + i}`,
  sshHost: '127.0.0.1',
  sshPort: 5001 + i,
}));

/** A logger that records what it is given, to check what is logged (and what is not). */
function recordingLogger() {
  const records: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, msg = '') =>
      records.push({ level, fields, msg });
  const logger = {
    child: () => logger,
    trace: at('trace'),
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    fatal: at('fatal'),
  };
  return { logger: logger as unknown as Logger, records };
}

/** Probes whose outcome per backend the test sets; a `down` entry makes that probe reject. */
function fakeProbes() {
  const down = { http: new Set<string>(), ssh: new Set<string>() };
  const calls = { http: 0, ssh: 0 };
  const make =
    (kind: 'http' | 'ssh'): Probe =>
    async (backend) => {
      calls[kind]++;
      if (down[kind].has(backend.name)) throw new Error(`${kind} of ${backend.name} is down`);
    };
  return { down, calls, probeHttp: make('http'), probeSsh: make('ssh') };
}

describe('health monitor', () => {
  it('starts optimistic: every backend is healthy before any probe', () => {
    const { logger } = recordingLogger();
    const monitor = createHealthMonitor({ backends, logger, ...fakeProbes() });
    assert.deepEqual(monitor.health('b2'), { http: true, ssh: true, checkedAt: 0 });
    assert.equal(monitor.isHttpHealthy('b1'), true);
    assert.equal(monitor.isSshHealthy('b3'), true);
    assert.equal(monitor.accountPrimary()?.name, 'b1');
    assert.throws(() => monitor.health('nope'), /unknown backend "nope"/);
  });

  it('flips on probe results, emits change only on a flip, and logs only then', async () => {
    const { logger, records } = recordingLogger();
    const probes = fakeProbes();
    const monitor = createHealthMonitor({ backends, logger, ...probes });
    const changes: [string, BackendHealth][] = [];
    monitor.on('change', (name, health) => changes.push([name, health]));

    await monitor.checkNow();
    assert.equal(probes.calls.http, 3);
    assert.equal(probes.calls.ssh, 3);
    assert.equal(changes.length, 0, 'all healthy as assumed: no change');
    assert.ok(monitor.health('b1').checkedAt > 0);

    probes.down.ssh.add('b1');
    await monitor.checkNow();
    assert.equal(changes.length, 1);
    const [name, health] = changes[0] as [string, BackendHealth];
    assert.equal(name, 'b1');
    assert.equal(health.http, true);
    assert.equal(health.ssh, false);
    assert.equal(health.lastError, 'ssh: ssh of b1 is down');
    assert.deepEqual(monitor.health('b1'), health);

    await monitor.checkNow();
    await monitor.checkNow();
    assert.equal(changes.length, 1, 'no event while the state holds');

    probes.down.ssh.delete('b1');
    await monitor.checkNow();
    assert.equal(changes.length, 2);
    assert.deepEqual(changes[1]?.[1].ssh, true);
    assert.equal(monitor.health('b1').lastError, undefined);

    const infos = records.filter((r) => r.level === 'info');
    assert.equal(infos.length, 2, 'one info line per change, none per probe');
    assert.deepEqual(infos[0]?.fields, {
      backend: 'b1',
      http: true,
      ssh: false,
      err: 'ssh: ssh of b1 is down',
    });
    assert.deepEqual(Object.keys(infos[0]?.fields ?? {}), ['backend', 'http', 'ssh', 'err']);
  });

  it('reports both failures in lastError', async () => {
    const probes = fakeProbes();
    const monitor = createHealthMonitor({ backends, logger: recordingLogger().logger, ...probes });
    probes.down.http.add('b3');
    probes.down.ssh.add('b3');
    await monitor.checkNow();
    assert.deepEqual(
      { ...monitor.health('b3'), checkedAt: 0 },
      {
        http: false,
        ssh: false,
        checkedAt: 0,
        lastError: 'http: http of b3 is down; ssh: ssh of b3 is down',
      },
    );
  });

  it('accountPrimary is the first SSH-healthy backend in configured order; HTTP health does not matter', async () => {
    const probes = fakeProbes();
    const monitor = createHealthMonitor({ backends, logger: recordingLogger().logger, ...probes });
    probes.down.http.add('b1');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary()?.name, 'b1');

    probes.down.ssh.add('b1');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary()?.name, 'b2');
    assert.deepEqual(
      monitor.sshCandidates().map((b) => b.name),
      ['b2', 'b3', 'b1'],
    );

    probes.down.ssh.add('b2');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary()?.name, 'b3');

    probes.down.ssh.add('b3');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary(), undefined);
    assert.deepEqual(
      monitor.sshCandidates().map((b) => b.name),
      ['b1', 'b2', 'b3'],
      'with none healthy, all are still tried in order',
    );

    probes.down.ssh.delete('b1');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary()?.name, 'b1', 'the primary comes back when it recovers');
  });

  it('reportHttpFailure marks HTTP down until the next successful probe', async () => {
    const probes = fakeProbes();
    const monitor = createHealthMonitor({ backends, logger: recordingLogger().logger, ...probes });
    const changes: string[] = [];
    monitor.on('change', (name, health) => changes.push(`${name} http=${health.http} ssh=${health.ssh}`));

    monitor.reportHttpFailure('b2', new Error('socket hang up'));
    assert.equal(monitor.isHttpHealthy('b2'), false);
    assert.equal(monitor.isSshHealthy('b2'), true);
    assert.equal(monitor.health('b2').lastError, 'http: socket hang up');
    monitor.reportHttpFailure('b2', new Error('again'));
    assert.deepEqual(changes, ['b2 http=false ssh=true'], 'a second report changes nothing');

    await monitor.checkNow();
    assert.equal(monitor.isHttpHealthy('b2'), true);
    assert.deepEqual(changes, ['b2 http=false ssh=true', 'b2 http=true ssh=true']);

    monitor.reportHttpFailure('unknown', new Error('x')); // ignored, never throws from an error path
  });

  it('reportSshFailure moves the account primary until the next successful probe', async () => {
    const monitor = createHealthMonitor({ backends, logger: recordingLogger().logger, ...fakeProbes() });
    monitor.reportSshFailure(
      'b1',
      Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }),
    );
    assert.equal(monitor.accountPrimary()?.name, 'b2');
    await monitor.checkNow();
    assert.equal(monitor.accountPrimary()?.name, 'b1');
  });

  it('a probe that ignores its timeout cannot hold a round forever', async () => {
    const monitor = createHealthMonitor({
      backends: backends.slice(0, 1),
      logger: recordingLogger().logger,
      timeoutMs: 10,
      probeHttp: () => new Promise(() => {}),
      probeSsh: async () => {},
    });
    await monitor.checkNow();
    assert.equal(monitor.isHttpHealthy('b1'), false);
    assert.match(monitor.health('b1').lastError ?? '', /probe gave no answer within 1010 ms/);
  });

  it('rounds never overlap, and checkNow during a round runs a fresh round after it', async () => {
    let running = 0;
    let maxRunning = 0;
    let rounds = 0;
    const slowSsh: Probe = async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await new Promise((resolve) => setTimeout(resolve, 20));
      running--;
      rounds++;
    };
    const monitor = createHealthMonitor({
      backends: backends.slice(0, 1),
      logger: recordingLogger().logger,
      probeHttp: async () => {},
      probeSsh: slowSsh,
    });
    await Promise.all([monitor.checkNow(), monitor.checkNow(), monitor.checkNow()]);
    assert.equal(maxRunning, 1);
    assert.equal(rounds, 3);
  });

  it('start probes on an interval; stop waits for the round in flight and is safe to call twice', async () => {
    const probes = fakeProbes();
    let release!: () => void;
    let firstRound = true;
    const monitor = createHealthMonitor({
      backends: backends.slice(0, 1),
      logger: recordingLogger().logger,
      intervalMs: 10,
      probeHttp: probes.probeHttp,
      probeSsh: async (backend, timeoutMs) => {
        if (firstRound) {
          firstRound = false;
          await new Promise<void>((resolve) => (release = resolve));
        }
        await probes.probeSsh(backend, timeoutMs);
      },
    });
    monitor.start();
    monitor.start(); // idempotent: one timer
    while (probes.calls.http === 0) await new Promise((resolve) => setTimeout(resolve, 5));

    let stopped = false;
    const stopping = monitor.stop().then(() => (stopped = true));
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(stopped, false, 'stop waits for the round in flight');
    release();
    await Promise.all([stopping, monitor.stop()]);
    await monitor.stop();

    const callsAtStop = probes.calls.http;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(probes.calls.http, callsAtStop, 'no probes after stop');
    assert.equal(callsAtStop, 1, 'a slow round delays the next tick instead of piling rounds up');
  });

  it('a throwing change listener is logged and does not break the round', async () => {
    const { logger, records } = recordingLogger();
    const probes = fakeProbes();
    const monitor = createHealthMonitor({ backends, logger, ...probes });
    monitor.on('change', () => {
      throw new Error('listener bug');
    });
    probes.down.http.add('b1');
    probes.down.http.add('b2');
    await monitor.checkNow();
    assert.equal(monitor.isHttpHealthy('b1'), false);
    assert.equal(monitor.isHttpHealthy('b2'), false);
    assert.equal(records.filter((r) => r.level === 'error').length, 2);
  });

  it('takes a backend its agent reports under the free-space reserve out of writes until it has room', async () => {
    const { logger, records } = recordingLogger();
    const space = (underReserve: boolean) => ({
      freeBytes: underReserve ? 10 : 900,
      sizeBytes: 1000,
      freePercent: underReserve ? 1 : 90,
      reserveBytes: 50,
      underReserve,
    });
    const full = new Set<string>();
    let agentDown = false;
    const monitor = createHealthMonitor({
      backends,
      logger,
      ...fakeProbes(),
      // b3 has no agent: its space stays unknown, which counts as room.
      diskSpace: async (backend) => {
        if (backend.name === 'b3') return undefined;
        if (agentDown) throw new Error('connect ECONNREFUSED');
        return space(full.has(backend.name));
      },
    });
    const changes: string[] = [];
    monitor.on('change', (name) => changes.push(name));
    await monitor.checkNow();
    assert.deepEqual(
      backends.map((b) => monitor.hasSpace(b.name)),
      [true, true, true],
    );
    full.add('b2');
    await monitor.checkNow();
    assert.equal(monitor.hasSpace('b2'), false);
    assert.equal(monitor.isHttpHealthy('b2'), true, 'full is not down: reads still go there');
    assert.deepEqual(monitor.health('b2').space, space(true));
    assert.deepEqual(changes, ['b2']);
    assert.ok(records.some((r) => r.level === 'warn' && /under its free-space reserve/.test(r.msg)));
    monitor.reportHttpFailure('b2', new Error('reset'));
    assert.equal(monitor.hasSpace('b2'), false, 'a reported failure keeps the space verdict');
    full.delete('b2');
    await monitor.checkNow();
    assert.equal(monitor.hasSpace('b2'), true);
    full.add('b1');
    await monitor.checkNow();
    agentDown = true;
    await monitor.checkNow();
    assert.equal(monitor.hasSpace('b1'), true, 'an agent that does not answer is no verdict');
  });
});
