// The client central processes (replicator, healer, cring) use to reach one backend's agent. Every call carries
// a fresh agent token and has a deadline; no call hangs.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync, statSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ApplyRefusedError, type BackendAccounts } from '@cring/accounts';
import type { ServerKey } from '@cring/charm';
import {
  charmIdsWire,
  type DiskSpace,
  decodeApplyResult,
  decodeSnapshot,
  decodeWith,
  diskSpaceWire,
  encodeApplyPlan,
  knowsUserWire,
  type ModTimeRequest,
  type ModTimeResult,
  modTimesAnswer,
} from './payloads.ts';
import { mintAgentToken } from './tokens.ts';

// The calls with JSON answers take node:http (not fetch, not an ESM import of node:http): fetch and such an import
// load Node's bundled undici, ~12 MiB RSS for the gateway, which only asks for free space (apps/gateway/README.md,
// Memory). The account DB transfers keep fetch: it reads the agent's early refusal of an upload (413 while the body
// is still being sent), which node:http loses when the agent resets the connection.
const http = process.getBuiltinModule('node:http');
const https = process.getBuiltinModule('node:https');

/** An error answer's text is read up to this (a body of its own size would be a lying agent). */
const MAX_ERROR_TEXT_BYTES = 64 * 1024;
/** A JSON answer is read up to this: the largest is the account snapshot (users and keys of one backend). */
const MAX_JSON_BYTES = 256 * 1024 * 1024;

/** The agent could not be reached, did not answer in time, or answered something unreadable. */
export class AgentUnavailableError extends Error {
  readonly code = 'AGENT_UNAVAILABLE';
  constructor(backend: string, reason: string, options?: ErrorOptions) {
    super(`agent of ${backend}: ${reason}`, options);
    this.name = 'AgentUnavailableError';
  }
}

/** The agent answered with an error of its own (relayed as it said it). */
export class AgentRefusedError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(backend: string, status: number, code: string, message: string) {
    super(`agent of ${backend} answered ${status}: ${message}`);
    this.name = 'AgentRefusedError';
    this.status = status;
    this.code = code;
  }
}

export interface AgentClient extends BackendAccounts {
  readonly url: string;
  /** A consistent copy of the backend's account DB (VACUUM INTO on the agent), written to `toFile`. */
  downloadAccountsDb(toFile: string): Promise<{ size: number; sha256: string }>;
  /**
   * Replaces the backend's account DB with `file` (its server stopped): `init` prepares a new backend (server
   * key, fresh marker, refuses one with users); `restore` puts a backup in place (refuses one with users unless
   * `force`).
   */
  uploadAccountsDb(mode: 'init' | 'restore', file: string, options?: { force?: boolean }): Promise<void>;
  /**
   * Gives replicas their acknowledged writes' modification times, each only if that file still has its `size`
   * bytes; one result per file, in order (at most MAX_MOD_TIMES_PER_CALL files).
   */
  setModTimes(files: readonly ModTimeRequest[]): Promise<ModTimeResult[]>;
  /** Free space on the backend's data volume and whether it is under the reserve. */
  diskSpace(options?: { timeoutMs?: number }): Promise<DiskSpace>;
}

export interface AgentClientOptions {
  backend: string;
  url: string;
  key: ServerKey;
  issuer: string;
  /** Deadline of one call (default 30 s). */
  timeoutMs?: number;
  /** Deadline of a whole DB transfer (default 10 min). */
  transferTimeoutMs?: number;
}

export const SHA256_HEADER = 'x-cring-sha256';

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const { backend } = options;
  const base = options.url.replace(/\/+$/, '');
  const timeoutMs = options.timeoutMs ?? 30_000;
  const transferTimeoutMs = options.transferTimeoutMs ?? 600_000;

  // Keep-alive like fetch had: the replicator sets modification times on every replica it writes.
  const transport = base.startsWith('https:') ? https : http;
  const agent = new transport.Agent({ keepAlive: true, maxSockets: 8 });
  // Parsed once: a URL string per request was parsed again on every call.
  const url = new URL(base);
  const target = {
    protocol: url.protocol,
    hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port,
    basePath: url.pathname.replace(/\/+$/, ''),
  };

  /**
   * One call, answered 2xx: the answer (its body still to read, within the same deadline). Any other answer is
   * thrown as AgentRefusedError with the agent's own code and message; no answer as AgentUnavailableError.
   * A call safe to send twice (`idempotent`: GETs, setting the same times again; an account merge is not) whose
   * pooled connection the agent had closed meanwhile is sent once more, on a new connection with a new token.
   */
  async function call(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string>; timeoutMs?: number; idempotent?: boolean } = {},
  ): Promise<IncomingMessage> {
    const signal = AbortSignal.timeout(init.timeoutMs ?? timeoutMs);
    const idempotent = init.idempotent ?? method === 'GET';
    let response: IncomingMessage;
    try {
      try {
        response = await send(method, path, init, signal);
      } catch (err) {
        if (!idempotent || !(err as { staleSocket?: boolean }).staleSocket) throw err;
        response = await send(method, path, init, signal);
      }
    } catch (err) {
      throw new AgentUnavailableError(backend, `${method} ${path}: ${failureOf(err, signal)}`, {
        cause: err,
      });
    }
    const status = response.statusCode ?? 0;
    if (status >= 200 && status < 300) return response;
    const text = await readText(response, MAX_ERROR_TEXT_BYTES).catch(() => '');
    throw refusal(status, text, response.statusMessage ?? '');
  }

  function send(
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> },
    signal: AbortSignal,
  ): Promise<IncomingMessage> {
    const token = mintAgentToken({ key: options.key, issuer: options.issuer, backend });
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, ...init.headers };
    if (typeof init.body === 'string') headers['content-length'] = String(Buffer.byteLength(init.body));
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = transport.request(
        {
          protocol: target.protocol,
          hostname: target.hostname,
          port: target.port,
          path: `${target.basePath}${path}`,
          method,
          headers,
          agent,
          signal,
        },
        resolve,
      );
      request.on('error', (err: NodeJS.ErrnoException) =>
        reject(Object.assign(err, { staleSocket: request.reusedSocket && isStaleSocketError(err) })),
      );
      request.end(init.body);
    });
  }

  /** The agent's own code and message from an error answer's text (JSON, or the text itself). */
  function refusal(status: number, text: string, statusText: string): AgentRefusedError {
    let answer: { code?: string; message?: string } = {};
    try {
      answer = JSON.parse(text);
    } catch {
      answer = { message: text.slice(0, 500) };
    }
    return new AgentRefusedError(
      backend,
      status,
      answer.code ?? `HTTP_${status}`,
      answer.message ?? statusText,
    );
  }

  /** An account DB transfer (fetch: see the top of this file), answered 2xx, else thrown as `call` does. */
  async function transfer(
    method: string,
    path: string,
    init: { body?: RequestInit['body']; headers?: Record<string, string>; duplex?: 'half' },
  ): Promise<Response> {
    const token = mintAgentToken({ key: options.key, issuer: options.issuer, backend });
    let response: Response;
    try {
      response = await fetch(`${base}${path}`, {
        method,
        body: init.body,
        headers: { authorization: `Bearer ${token}`, ...init.headers },
        signal: AbortSignal.timeout(transferTimeoutMs),
        ...(init.duplex ? { duplex: init.duplex } : {}),
      } as RequestInit);
    } catch (err) {
      throw new AgentUnavailableError(backend, `${method} ${path}: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (response.ok) return response;
    throw refusal(response.status, await response.text().catch(() => ''), response.statusText);
  }

  async function json(
    method: string,
    path: string,
    body?: unknown,
    callOptions: { timeoutMs?: number; idempotent?: boolean } = {},
  ): Promise<unknown> {
    const response = await call(method, path, {
      ...(body === undefined
        ? {}
        : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
      ...callOptions,
    });
    try {
      return JSON.parse(await readText(response, MAX_JSON_BYTES));
    } catch (err) {
      throw new AgentUnavailableError(backend, `${method} ${path}: unreadable answer`, { cause: err });
    }
  }

  return {
    name: backend,
    url: base,
    async read() {
      return decodeSnapshot(await json('GET', '/v1/accounts'));
    },
    async apply(plan) {
      let answer: unknown;
      try {
        answer = await json('POST', '/v1/accounts/apply', encodeApplyPlan(plan));
      } catch (err) {
        // The agent answered an error: its transaction rolled back. A lost answer stays "unknown".
        if (err instanceof AgentRefusedError) throw new ApplyRefusedError(err.message, { cause: err });
        throw err;
      }
      return decodeApplyResult(answer);
    },
    async charmIds() {
      return decodeWith(charmIdsWire, await json('GET', '/v1/users'), 'user list').charmIds;
    },
    async knowsUser(charmId) {
      const path = `/v1/users/${encodeURIComponent(charmId)}`;
      return decodeWith(knowsUserWire, await json('GET', path), 'user answer').known;
    },
    async downloadAccountsDb(toFile) {
      const response = await transfer('GET', '/v1/accounts-db', {});
      if (!response.body) throw new AgentUnavailableError(backend, 'the account DB answer has no body');
      const hash = createHash('sha256');
      const body = Readable.fromWeb(response.body as import('node:stream/web').ReadableStream);
      body.on('data', (chunk: Buffer) => hash.update(chunk));
      try {
        await pipeline(body, createWriteStream(toFile, { mode: 0o600 }));
      } catch (err) {
        rmSync(toFile, { force: true });
        throw new AgentUnavailableError(backend, `account DB transfer broke: ${(err as Error).message}`, {
          cause: err,
        });
      }
      const sha256 = hash.digest('hex');
      const expected = response.headers.get(SHA256_HEADER);
      if (expected !== sha256) {
        rmSync(toFile, { force: true });
        throw new AgentUnavailableError(
          backend,
          `the account DB arrived damaged (sha256 ${sha256}, sent ${expected})`,
        );
      }
      return { size: statSync(toFile).size, sha256 };
    },
    async uploadAccountsDb(mode, file, uploadOptions = {}) {
      const hash = createHash('sha256');
      await pipeline(createReadStream(file), hash);
      const query = new URLSearchParams({ mode, force: String(uploadOptions.force ?? false) });
      await transfer('PUT', `/v1/accounts-db?${query}`, {
        body: Readable.toWeb(createReadStream(file)) as unknown as RequestInit['body'],
        duplex: 'half',
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(statSync(file).size),
          [SHA256_HEADER]: hash.digest('hex'),
        },
      });
    },
    async diskSpace(diskOptions = {}) {
      const answer = await json('GET', '/v1/disk', undefined, { timeoutMs: diskOptions.timeoutMs });
      return decodeWith(diskSpaceWire, answer, 'disk space answer');
    },
    async setModTimes(files) {
      const { results } = decodeWith(
        modTimesAnswer,
        await json('POST', '/v1/files/mtimes', { files }, { idempotent: true }),
        'modification times answer',
      );
      if (results.length !== files.length)
        throw new AgentUnavailableError(backend, `${results.length} results for ${files.length} files`);
      return results;
    },
  };
}

/** The body of an answer as text, refused past maxBytes. */
async function readText(response: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      response.destroy();
      throw new Error(`answer larger than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The errors of a write to a kept-alive connection the other side had closed meanwhile. */
function isStaleSocketError(err: NodeJS.ErrnoException): boolean {
  return err.code === 'ECONNRESET' || err.code === 'EPIPE';
}

/** Why a call got no answer: the deadline, or the connection's own error. */
function failureOf(err: unknown, signal: AbortSignal): string {
  if (signal.aborted)
    return `no answer within the deadline (${(signal.reason as Error)?.message ?? 'timeout'})`;
  return (err as Error).message;
}
