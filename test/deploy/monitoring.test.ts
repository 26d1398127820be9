// The shipped alert rules and Grafana dashboard: the rules load in Prometheus' own checker and fire as their unit
// tests say; every metric either one names is one the processes export (so they cannot drift apart silently).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from '@cring/local-cluster';

const dir = join(repoRoot, 'deploy', 'monitoring');
const promtool = (...args: string[]) => execFileSync('promtool', args, { cwd: dir, encoding: 'utf8' });

/** Metric names the code registers (prom-client `name: 'cring_…'`), plus histogram series and default metrics. */
function exportedMetrics(): Set<string> {
  const names = new Set<string>();
  const walk = (path: string) => {
    for (const entry of readdirSync(path)) {
      const full = join(path, entry);
      if (entry === 'node_modules') continue;
      if (statSync(full).isDirectory()) walk(full);
      else if (entry.endsWith('.ts') && !entry.endsWith('.test.ts'))
        for (const m of readFileSync(full, 'utf8').matchAll(/name: '(cring_[a-z0-9_]+)'/g))
          names.add(m[1] as string);
    }
  };
  for (const root of ['apps', 'libs']) walk(join(repoRoot, root));
  for (const name of [...names]) for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
  return names;
}

const metricsIn = (expr: string) => [...expr.matchAll(/\b(cring_[a-z0-9_]+)/g)].map((m) => m[1] as string);

describe('monitoring', () => {
  it('the alert rules pass promtool check rules and their unit tests', () => {
    assert.match(promtool('check', 'rules', 'alerts.yml'), /SUCCESS: \d+ rules found/);
    assert.match(promtool('test', 'rules', 'alerts.test.yml'), /SUCCESS/);
  });

  it('alerts and dashboard panels only name metrics the processes export', () => {
    const exported = exportedMetrics();
    assert.ok(exported.has('cring_backend_up'));
    const rules = readFileSync(join(dir, 'alerts.yml'), 'utf8');
    const dashboard = JSON.parse(readFileSync(join(dir, 'grafana-dashboard.json'), 'utf8')) as {
      uid: string;
      panels: { title: string; targets: { expr: string }[] }[];
    };
    assert.equal(dashboard.uid, 'charmed-ring');
    const named = [
      ...metricsIn(rules),
      ...dashboard.panels.flatMap((p) => p.targets.flatMap((t) => metricsIn(t.expr))),
    ];
    assert.ok(named.length > 10);
    for (const name of named) assert.ok(exported.has(name), `${name} is exported by some process`);
    for (const panel of dashboard.panels) assert.ok(panel.targets.length > 0, `${panel.title} has a query`);
  });

  it('covers what an operator must hear about', () => {
    const rules = readFileSync(join(dir, 'alerts.yml'), 'utf8');
    for (const alert of [
      'CharmBackendDown',
      'CharmQuorumFailures',
      'CharmQueueBacklogOld',
      'CharmJobsFailed',
      'CharmScanFoundProblems',
      'CharmSpoolNearBudget',
      'CharmRedisFailover',
      'CharmBackendUnderFreeSpaceReserve',
      'CharmBackendFreeSpaceLow',
      'CharmAgentTempSweepFailing',
      'CharmAgentTempFilesPiling',
    ])
      assert.match(rules, new RegExp(`alert: ${alert}\\n`));
  });
});
