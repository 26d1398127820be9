/**
 * The gateway's errors. Each has a stable `code` and the HTTP status it maps to; the fastify error handler is the
 * one place that turns them into `{"message": …}` answers (the shape the charm client prints).
 */
export class GatewayError extends Error {
  readonly statusCode: number;
  readonly code: string;
  /** Sent as Retry-After: the condition is expected to pass within this many seconds. */
  readonly retryAfterSeconds?: number;
  /** The connection is closed after the answer (a client that stalled may never read it). */
  readonly closeConnection: boolean;
  /** Set when a limit (docs/security.md) refused the request: the `limit` label of cring_limit_trips_total. */
  readonly limit?: string;
  constructor(
    statusCode: number,
    code: string,
    message: string,
    options?: { cause?: unknown; retryAfterSeconds?: number; closeConnection?: boolean; limit?: string },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.statusCode = statusCode;
    this.code = code;
    this.retryAfterSeconds = options?.retryAfterSeconds;
    this.closeConnection = options?.closeConnection ?? false;
    this.limit = options?.limit;
  }
}

export class UnauthorizedError extends GatewayError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(401, 'UNAUTHORIZED', message, options);
  }
}

export class BadRequestError extends GatewayError {
  constructor(message: string) {
    super(400, 'BAD_REQUEST', message);
  }
}

export class PayloadTooLargeError extends GatewayError {
  constructor(limitBytes: number) {
    super(413, 'PAYLOAD_TOO_LARGE', `the upload is larger than the ${limitBytes}-byte limit`);
  }
}

/** The spool holds as many upload bytes as its budget allows: nothing was read or changed, retry shortly. */
export class SpoolFullError extends GatewayError {
  constructor(budgetBytes: number, retryAfterSeconds: number) {
    super(
      503,
      'SPOOL_FULL',
      `the gateway is receiving as many uploads as its ${budgetBytes}-byte spool budget allows; nothing was changed, retry in a few seconds`,
      { retryAfterSeconds, limit: 'spool_budget' },
    );
  }
}

/** The client stopped sending its upload: its fault, not a backend's; nothing was changed. */
export class UploadStalledError extends GatewayError {
  constructor(stallMs: number, receivedBytes: number) {
    super(
      408,
      'UPLOAD_STALLED',
      `the upload sent no data for ${stallMs} ms (after ${receivedBytes} bytes); nothing was changed`,
      { closeConnection: true, limit: 'upload_stall' },
    );
  }
}

/** What became of a failed change on the backends it reached (the roll-back's outcome), said in the answer. */
export const NOTHING_CHANGED = 'nothing was changed';

/**
 * Fewer than W owners accepted a write or delete: nothing was acknowledged, recorded or queued. `aftermath` says
 * what became of the backends it reached (rolled back, or left to the healer).
 */
export class NoQuorumError extends GatewayError {
  readonly failures: { backend: string; reason: string }[];
  constructor(
    needed: number,
    got: number,
    failures: { backend: string; reason: string }[],
    aftermath = NOTHING_CHANGED,
  ) {
    const detail = failures.map((f) => `${f.backend}: ${f.reason}`).join('; ');
    super(
      503,
      'NO_QUORUM',
      `only ${got} of the ${needed} backends a change needs accepted it (${detail || 'no backend reachable'}); ${aftermath}, retry when the backends are back`,
    );
    this.failures = failures;
  }
}

/** Fewer than W backends are above their free-space reserve: refused before anything is read or written. */
export class InsufficientStorageError extends GatewayError {
  constructor(needed: number, full: string[]) {
    super(
      507,
      'INSUFFICIENT_STORAGE',
      `the backends are out of space: ${full.join(', ')} ${full.length === 1 ? 'is' : 'are'} under the free-space reserve and a write needs ${needed} with room; nothing was changed, retry once space is freed`,
    );
  }
}

/**
 * Every backend that answered refused the change with the same answer of its own (a file over a directory, a
 * name too long, a quota): that answer is relayed as the backends gave it, not turned into an outage.
 */
export class BackendAnswerError extends GatewayError {
  readonly body: Buffer;
  readonly contentType: string;
  constructor(status: number, body: Buffer, contentType: string) {
    super(status, 'BACKEND_ANSWER', body.toString('utf8').slice(0, 200));
    this.body = body;
    this.contentType = contentType;
  }
}

/** The path lock was lost mid-change (the gateway froze past its TTL, or Redis failed): the change was refused. */
export class LockLostChangeError extends GatewayError {
  constructor(message: string, aftermath = NOTHING_CHANGED) {
    super(503, 'LOCK_LOST', `${message}; ${aftermath}, retry`);
  }
}

/** No backend of the user answers: reads come from the S3 backup, changes wait for a backend. */
export class ReadOnlyError extends GatewayError {
  constructor(failures: { backend: string; reason: string }[]) {
    const detail = failures.map((f) => `${f.backend}: ${f.reason}`).join('; ');
    super(
      503,
      'READ_ONLY',
      `no backend is reachable (${detail}): the cluster is read-only, serving reads from the S3 backup; retry this change when a backend is back`,
    );
  }
}

/** Redis (manifest and queues) is unreachable: writes are refused rather than left unrecorded. */
export class StateUnavailableError extends GatewayError {
  constructor(cause: unknown, aftermath = NOTHING_CHANGED) {
    super(
      503,
      'STATE_UNAVAILABLE',
      `the gateway cannot reach Redis (${(cause as Error)?.message ?? cause}); ${aftermath}, retry when Redis is back`,
      { cause },
    );
  }
}

/** Committed on the backends and the Redis primary, but no Redis replica confirmed the record in time. */
export class NotReplicatedError extends GatewayError {
  constructor(cause: Error, holders: number) {
    super(
      503,
      'STATE_NOT_REPLICATED',
      `the change is on ${holders} backends and recorded on the Redis primary, but ${cause.message}, so a Redis failover could forget it; retry the same request`,
      { cause },
    );
  }
}

export class BusyPathError extends GatewayError {
  constructor(message: string) {
    super(503, 'PATH_BUSY', message);
  }
}

/** No backend could answer a read. */
export class NoBackendError extends GatewayError {
  constructor(what: string, failures: { backend: string; reason: string }[]) {
    const detail = failures.map((f) => `${f.backend}: ${f.reason}`).join('; ');
    super(503, 'NO_BACKEND', `no backend could answer ${what} (${detail || 'none configured'})`);
  }
}
