export { createLogger, type Logger } from './logger.ts';
export { createMetricsRegistry, serveMetrics } from './metrics.ts';
export { installShutdown, type ShutdownOptions } from './shutdown.ts';
