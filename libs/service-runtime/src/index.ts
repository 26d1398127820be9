export { createLogger, type Logger } from './logger.ts';
export { installShutdown, type ShutdownOptions } from './shutdown.ts';
