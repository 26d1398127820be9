/** What the healer keeps in Redis between runs: the resume cursor and the last scan's result. */
import { healerKeys } from '@cring/jobs';
import type { Redis } from 'ioredis';
import type { ScanReport } from './report.ts';

export { healerKeys };

export interface ScanCursor {
  scanId: string;
  lastUser: string;
  atMs: number;
}

export async function readCursor(redis: Redis): Promise<ScanCursor | undefined> {
  const raw = await redis.get(healerKeys.cursor());
  return raw ? (JSON.parse(raw) as ScanCursor) : undefined;
}

export async function writeCursor(redis: Redis, cursor: ScanCursor): Promise<void> {
  await redis.set(healerKeys.cursor(), JSON.stringify(cursor));
}

export async function clearCursor(redis: Redis): Promise<void> {
  await redis.del(healerKeys.cursor());
}

const STORED_FINDINGS = 100;

/** The report without its long lists, as the last result and a job's return value carry it. */
export function compactReport(report: ScanReport): ScanReport {
  return {
    ...report,
    findings: report.findings.slice(0, STORED_FINDINGS),
    findingsOmitted: report.findingsOmitted + Math.max(0, report.findings.length - STORED_FINDINGS),
    ...(report.wait
      ? { wait: { ...report.wait, failed: report.wait.failed.slice(0, STORED_FINDINGS) } }
      : {}),
  };
}

export async function saveLastResult(redis: Redis, report: ScanReport): Promise<void> {
  await redis.set(healerKeys.lastResult(), JSON.stringify(compactReport(report)));
}

export async function readLastResult(redis: Redis): Promise<ScanReport | undefined> {
  const raw = await redis.get(healerKeys.lastResult());
  return raw ? (JSON.parse(raw) as ScanReport) : undefined;
}
