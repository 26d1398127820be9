import type { ScanProgress } from './scan/scan.ts';

const BAR_WIDTH = 24;
const REDRAW_EVERY_MS = 100;

/** One line of progress on a TTY (stderr), redrawn in place at most ten times a second. */
export function createProgressBar(stream: NodeJS.WriteStream) {
  const started = performance.now();
  let lastDrawMs = 0;
  let drawn = false;
  const bar = (done: number, total: number) => {
    const filled = total > 0 ? Math.round((done / total) * BAR_WIDTH) : 0;
    return `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
  };
  const draw = (text: string, force: boolean) => {
    const now = performance.now();
    if (!force && now - lastDrawMs < REDRAW_EVERY_MS) return;
    lastDrawMs = now;
    drawn = true;
    stream.write(`\r\x1b[K${text.slice(0, (stream.columns ?? 120) - 1)}`);
  };
  return {
    scan(progress: ScanProgress) {
      const seconds = (performance.now() - started) / 1000;
      const rate = seconds > 0 ? progress.files / seconds : 0;
      draw(
        `${bar(progress.usersDone, progress.totalUsers)} users ${progress.usersDone}/${progress.totalUsers} · files ${progress.files} · ${rate.toFixed(0)} files/s`,
        progress.usersDone === progress.totalUsers,
      );
    },
    wait(done: number, total: number) {
      draw(`${bar(done, total)} repairs finished ${done}/${total}`, done === total);
    },
    clear() {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
