import pino, { type Logger } from 'pino';

export type { Logger };

/** The one logger of a process: JSON lines, pretty only on a TTY, tokens and secrets redacted. */
export function createLogger(options: { name: string; level?: string; pretty?: boolean }): Logger {
  const pretty = options.pretty ?? process.stdout.isTTY === true;
  return pino({
    name: options.name,
    level: options.level ?? 'info',
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        '*.secretAccessKey',
        '*.password',
        'config.adminPassword',
        'config.s3.secretAccessKey',
      ],
      censor: '[redacted]',
    },
    ...(pretty ? { transport: { target: 'pino-pretty', options: { translateTime: 'SYS:HH:MM:ss.l' } } } : {}),
  });
}
