// `--at`: an ISO-8601 time with its zone (2026-12-01T10:30:00Z, …+01:00), or a time relative to now (-90s, -15m,
// -2h, -3d). A time without a zone is refused: it would silently mean the machine's local time.
import { UsageError } from '../config.ts';

const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;
const RELATIVE = /^-(\d+)(s|m|h|d)$/;
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export function parseRestoreTime(text: string | undefined, now: Date): Date {
  if (!text)
    throw new UsageError(
      'restore needs --at <time> (e.g. 2026-12-01T10:30:00Z, or --at=-2h for two hours ago)',
    );
  const relative = RELATIVE.exec(text);
  let at: Date;
  if (relative) {
    at = new Date(now.getTime() - Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS]);
  } else if (ISO_WITH_ZONE.test(text) && !Number.isNaN(Date.parse(text))) {
    at = new Date(text);
  } else {
    throw new UsageError(
      `--at ${JSON.stringify(text)}: expected an ISO-8601 time with a zone (2026-12-01T10:30:00Z, 2026-12-01T11:30:00+01:00) or -<n>s|m|h|d`,
    );
  }
  if (at.getTime() > now.getTime())
    throw new UsageError(`--at ${text} is in the future (${at.toISOString()})`);
  return at;
}
