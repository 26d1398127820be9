import { join } from 'node:path';
import { SERVER_KEY_FILE } from '@cring/accounts';
import { issuesOf, requiredIssuer } from '@cring/config';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

const schema = z.object({
  CRING_AGENT_BACKEND: z
    .string({ error: 'required: the name of the backend this agent runs beside (as in CRING_BACKENDS)' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'a backend name (letters, digits, _ . -)'),
  CRING_AGENT_DATA_DIR: z.string({ error: "required: that backend's CHARM_SERVER_DATA_DIR" }).min(1),
  CRING_AGENT_HOST: z.string().default('127.0.0.1'),
  CRING_AGENT_PORT: z.coerce.number().int().min(0).max(65535).default(35390),
  CRING_ISSUER: requiredIssuer,
  /** The cluster key; by default the backend's own copy in its data dir. */
  CRING_SERVER_KEY_FILE: z.string().min(1).optional(),
  CRING_AGENT_MAX_DB_BYTES: positiveInt.default(1024 ** 3),
  /** Serve HTTPS (then name the agent https://… in CRING_AGENTS): tokens and account rows never cross in clear. */
  CRING_AGENT_TLS_CERT_FILE: z.string().min(1).optional(),
  CRING_AGENT_TLS_KEY_FILE: z.string().min(1).optional(),
  /** The charm server's TMPDIR, where v0.12.6 leaks the temp file of every upload above 32 MiB. */
  CRING_AGENT_SERVER_TMP_DIR: z.string().min(1).optional(),
  CRING_AGENT_TEMP_MAX_AGE_MS: positiveInt.default(600_000),
  CRING_AGENT_TEMP_SWEEP_INTERVAL_MS: positiveInt.default(60_000),
  CRING_BACKEND_FREE_SPACE_RESERVE_PERCENT: z.coerce.number().min(0).max(100).default(5),
  CRING_BACKEND_FREE_SPACE_RESERVE_BYTES: z.coerce.number().int().min(0).default(0),
  CRING_SHUTDOWN_DEADLINE_MS: positiveInt.default(15_000),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export interface AgentConfig {
  backend: string;
  dataDir: string;
  host: string;
  port: number;
  issuer: string;
  serverKeyFile: string;
  maxDbBytes: number;
  tls?: { certFile: string; keyFile: string };
  /** Sweeping the server's leaked upload temp files (off when its TMPDIR is not given). */
  tempSweep?: { dir: string; maxAgeMs: number; intervalMs: number };
  /** Under this much free space the backend takes no new writes or repairs. */
  reserve: { percent: number; bytes: number };
  shutdownDeadlineMs: number;
  logLevel: string;
}

/** Reads the agent's settings from the environment; every bad key is listed in one error. */
export function loadConfig(env: NodeJS.ProcessEnv): AgentConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    throw new Error(
      `invalid agent configuration:\n${issuesOf(parsed.error)
        .map((p) => `  ${p}`)
        .join('\n')}`,
    );
  }
  const e = parsed.data;
  if (Boolean(e.CRING_AGENT_TLS_CERT_FILE) !== Boolean(e.CRING_AGENT_TLS_KEY_FILE)) {
    throw new Error(
      'invalid agent configuration:\n  CRING_AGENT_TLS_CERT_FILE and CRING_AGENT_TLS_KEY_FILE: set both (HTTPS) or neither (HTTP)',
    );
  }
  return {
    backend: e.CRING_AGENT_BACKEND,
    dataDir: e.CRING_AGENT_DATA_DIR,
    host: e.CRING_AGENT_HOST,
    port: e.CRING_AGENT_PORT,
    issuer: e.CRING_ISSUER,
    serverKeyFile: e.CRING_SERVER_KEY_FILE ?? join(e.CRING_AGENT_DATA_DIR, SERVER_KEY_FILE),
    maxDbBytes: e.CRING_AGENT_MAX_DB_BYTES,
    tls:
      e.CRING_AGENT_TLS_CERT_FILE && e.CRING_AGENT_TLS_KEY_FILE
        ? { certFile: e.CRING_AGENT_TLS_CERT_FILE, keyFile: e.CRING_AGENT_TLS_KEY_FILE }
        : undefined,
    tempSweep: e.CRING_AGENT_SERVER_TMP_DIR
      ? {
          dir: e.CRING_AGENT_SERVER_TMP_DIR,
          maxAgeMs: e.CRING_AGENT_TEMP_MAX_AGE_MS,
          intervalMs: e.CRING_AGENT_TEMP_SWEEP_INTERVAL_MS,
        }
      : undefined,
    reserve: {
      percent: e.CRING_BACKEND_FREE_SPACE_RESERVE_PERCENT,
      bytes: e.CRING_BACKEND_FREE_SPACE_RESERVE_BYTES,
    },
    shutdownDeadlineMs: e.CRING_SHUTDOWN_DEADLINE_MS,
    logLevel: e.LOG_LEVEL,
  };
}
