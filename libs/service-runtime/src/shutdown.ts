import type { Logger } from 'pino';

export interface ShutdownOptions {
  logger: Logger;
  /** Stops accepting work, drains, closes connections. Called once. */
  shutdown: (signal: string) => Promise<void>;
  deadlineMs?: number;
  exit?: (code: number) => void;
  signals?: readonly NodeJS.Signals[];
  target?: Pick<NodeJS.Process, 'once' | 'removeListener'>;
}

const SIGNAL_NUMBERS: Record<string, number> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };

/**
 * Runs `shutdown` once on the first signal, then exits 128+signal (0 when `stop()` is called directly, 1 when
 * shutdown fails). A hard deadline exits anyway so a stuck drain cannot keep a process alive forever.
 */
export function installShutdown(options: ShutdownOptions): { stop: (reason?: string) => Promise<void> } {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const target = options.target ?? process;
  const signals = options.signals ?? ['SIGINT', 'SIGTERM'];
  let running: Promise<void> | undefined;

  const stop = (reason = 'stop', code = 0): Promise<void> => {
    if (running) return running;
    options.logger.info({ reason }, 'shutting down');
    const deadline = setTimeout(() => {
      options.logger.error({ deadlineMs: options.deadlineMs ?? 15_000 }, 'shutdown deadline passed, exiting');
      exit(code || 1);
    }, options.deadlineMs ?? 15_000);
    deadline.unref();
    running = options.shutdown(reason).then(
      () => {
        clearTimeout(deadline);
        options.logger.info('stopped');
        exit(code);
      },
      (err: unknown) => {
        clearTimeout(deadline);
        options.logger.error({ err }, 'shutdown failed');
        exit(1);
      },
    );
    return running;
  };

  for (const signal of signals) {
    target.once(signal, () => void stop(signal, 128 + (SIGNAL_NUMBERS[signal] ?? 0)));
  }
  return { stop: (reason) => stop(reason, 0) };
}
