import { type Backend, parseBackends } from '@cring/charm';
import { z } from 'zod';

const port = z.coerce.number().int().min(0).max(65535);

const schema = z.object({
  CRING_BACKENDS: z.string({ error: 'required: name=httpUrl[|sshHost:sshPort],… (account primary first)' }),
  CRING_HTTP_HOST: z.string().default('0.0.0.0'),
  CRING_HTTP_PORT: port.default(35354),
  CRING_SSH_HOST: z.string().default('0.0.0.0'),
  CRING_SSH_PORT: port.default(35353),
  CRING_ADMIN_HOST: z.string().default('127.0.0.1'),
  CRING_ADMIN_PORT: port.default(35380),
  CRING_SHUTDOWN_DEADLINE_MS: z.coerce.number().int().positive().default(15_000),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface GatewayConfig {
  backends: Backend[];
  http: { host: string; port: number };
  ssh: { host: string; port: number };
  admin: { host: string; port: number };
  shutdownDeadlineMs: number;
  logLevel: string;
}

/** Reads the gateway's settings from the environment; every bad key is listed in one error. */
export function loadConfig(env: NodeJS.ProcessEnv): GatewayConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join('.')}: ${issue.message}`);
    throw new Error(`invalid gateway configuration:\n${problems.join('\n')}`);
  }
  const e = parsed.data;
  let backends: Backend[];
  try {
    backends = parseBackends(e.CRING_BACKENDS);
  } catch (err) {
    throw new Error(`invalid gateway configuration:\n  CRING_BACKENDS: ${(err as Error).message}`);
  }
  return {
    backends,
    http: { host: e.CRING_HTTP_HOST, port: e.CRING_HTTP_PORT },
    ssh: { host: e.CRING_SSH_HOST, port: e.CRING_SSH_PORT },
    admin: { host: e.CRING_ADMIN_HOST, port: e.CRING_ADMIN_PORT },
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
