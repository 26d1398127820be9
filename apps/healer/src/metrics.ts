import type { Redis } from 'ioredis';
import { Gauge, type Registry } from 'prom-client';
import { readLastResult } from './scan/scan-state.ts';

/** The last scan's results as gauges, read from Redis when scraped (whichever healer ran it). */
export function registerScanMetrics(registry: Registry, redis: Redis): void {
  new Gauge({
    name: 'cring_healer_last_scan',
    help: 'The last scan: users, files, missing, size/hash mismatches, deleted copies, adopted, unrepairable, seconds, healthy (1/0), finished (unix seconds)',
    labelNames: ['figure'],
    registers: [registry],
    async collect() {
      this.reset();
      const report = await readLastResult(redis).catch(() => undefined);
      if (!report) return;
      const s = report.stats;
      const figures: Record<string, number> = {
        users: s.users,
        files: s.files,
        missing: s.missing,
        size_mismatched: s.sizeMismatched,
        hash_mismatched: s.hashMismatched,
        deleted_copies: s.deletedCopies,
        adopted: s.adopted,
        unrepairable: s.unrepairable,
        seconds: report.scanSeconds,
        healthy: report.healthy ? 1 : 0,
        finished_timestamp_seconds: Date.parse(report.finishedAt) / 1000,
      };
      for (const [figure, value] of Object.entries(figures)) this.set({ figure }, value);
    },
  });
}
