/**
 * An HTTP client to ONE charm backend's `/v1/fs` API for background work (replication, repair, scans). It
 * authenticates as any user with tokens it mints with the shared server key, and streams file bodies both ways.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { ClientRequest, Agent as HttpAgent, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
import type { Backend } from './backends.ts';
import { cleanFsPath, goEscapedPath } from './fs-path.ts';
import { mintCharmJwt } from './jwt.ts';
import { singleFileMultipart } from './multipart.ts';
import type { ServerKey } from './server-key.ts';

// node:http via getBuiltinModule, not an ESM import: importing it loads Node's bundled undici (the lazy WebSocket
// exports), ~12 MiB RSS that nothing here uses (nodejs/node#59686; apps/gateway/README.md, Memory).
const http = process.getBuiltinModule('node:http');

/**
 * The framing of uploads this client makes. The server caps a whole body at 1 GiB, so a copy must never be larger
 * than the upload the gateway accepted: a one-letter filename and a 16-character boundary keep its framing smaller
 * than any stock client's (a 60-character boundary and the file's path as the filename, both ignored by the server).
 */
export function replicaFraming() {
  return singleFileMultipart({ filename: 'x', boundary: randomBoundary() });
}

// Boundaries stay unpredictable (a stored file could otherwise carry one and cut its copy short), but are drawn
// from a pool filled by one randomBytes call per 128 uploads: one call per upload showed in the replicator's profile.
const BOUNDARY_BYTES = 8;
let boundaryPool = Buffer.alloc(0);
let boundaryOffset = 0;
function randomBoundary(): string {
  if (boundaryOffset + BOUNDARY_BYTES > boundaryPool.length) {
    boundaryPool = randomBytes(BOUNDARY_BYTES * 128);
    boundaryOffset = 0;
  }
  boundaryOffset += BOUNDARY_BYTES;
  return boundaryPool.toString('hex', boundaryOffset - BOUNDARY_BYTES, boundaryOffset);
}

/** One entry of the server's directory listing (`charm.FileInfo`); `mode` is a Go FileMode. */
export interface FileInfo {
  name: string;
  is_dir: boolean;
  size: number;
  modtime: string;
  mode: number;
  files?: FileInfo[];
}

/** The backend answered with a status other than the one the operation expects. */
export class BackendHttpError extends Error {
  readonly backend: string;
  readonly status: number;
  readonly body: string;

  constructor(backend: string, request: string, status: number, body: string) {
    super(`backend ${backend} answered ${status} to ${request}: ${summarize(body)}`);
    this.name = 'BackendHttpError';
    this.backend = backend;
    this.status = status;
    this.body = body;
  }

  /** The user (the token's charm_id) does not exist on this backend: not the same as a missing file. */
  get missingUser(): boolean {
    return this.status === 404 && jsonMessage(this.body)?.startsWith('missing user for id') === true;
  }
}

/** The backend could not be reached or the connection broke (refused, reset, timed out). */
export class BackendUnavailableError extends Error {
  readonly backend: string;

  constructor(backend: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BackendUnavailableError';
    this.backend = backend;
  }
}

/** An upload's bytes were not the expected ones; it was aborted, so the backend kept its previous file. */
export class ChecksumMismatchError extends Error {
  readonly backend: string;
  readonly path: string;
  readonly expectedSize: number;
  /** The bytes read from the source; a lower bound when it had more than `expectedSize`. */
  readonly actualSize: number;
  readonly expectedSha256: string | undefined;
  readonly actualSha256: string | undefined;

  constructor(fields: {
    backend: string;
    path: string;
    expectedSize: number;
    actualSize: number;
    expectedSha256?: string;
    actualSha256?: string;
  }) {
    const what =
      fields.actualSize !== fields.expectedSize
        ? `${fields.actualSize > fields.expectedSize ? 'more than ' : ''}${fields.actualSize} bytes instead of ${fields.expectedSize}`
        : `sha256 ${fields.actualSha256} instead of ${fields.expectedSha256}`;
    super(`upload of ${fields.path} to backend ${fields.backend} aborted: the source had ${what}`);
    this.name = 'ChecksumMismatchError';
    this.backend = fields.backend;
    this.path = fields.path;
    this.expectedSize = fields.expectedSize;
    this.actualSize = fields.actualSize;
    this.expectedSha256 = fields.expectedSha256;
    this.actualSha256 = fields.actualSha256;
  }
}

/** A file operation was asked for a path that is a directory on the backend. */
export class PathIsDirectoryError extends Error {
  readonly backend: string;
  readonly path: string;

  constructor(backend: string, path: string) {
    super(`${path} is a directory on backend ${backend}, not a file`);
    this.name = 'PathIsDirectoryError';
    this.backend = backend;
    this.path = path;
  }
}

export interface BackendClient {
  readonly backend: Backend;
  /** GET a file: undefined on 404; the body is a stream of the stored bytes. Throws if the path is a directory.
   *  Read the body to the end or destroy it: it holds a connection (dropped after timeoutMs of inactivity). */
  getFile(
    charmId: string,
    path: string,
  ): Promise<{ body: Readable; mode: number; lastModified: string; contentLength?: number } | undefined>;
  /** POST a file with the stock client's multipart framing and ?mode=; the body stream is hashed on the way and, if
   *  expectSha256 is given and differs (or the byte count differs from size), the request is aborted BEFORE the closing
   *  boundary is sent so the backend keeps its old file (the charm server parses the whole form before writing).
   *  The body is consumed, and destroyed when the upload fails. */
  putFile(
    charmId: string,
    path: string,
    file: { body: Readable; size: number; mode: number; expectSha256?: string },
  ): Promise<void>;
  /** Recursive DELETE (200 also when missing). */
  deletePath(charmId: string, path: string): Promise<void>;
  /** GET a path's listing: undefined on 404; a FileInfo (is_dir true, with files) for a directory, or is_dir false for a file
   *  (then size, modtime and mode come from its parent's listing, so a file stat costs two GETs). */
  stat(charmId: string, path: string): Promise<FileInfo | undefined>;
  /** Walk the user's tree below path and yield every FILE as { path, size, mode } (paths rooted at '/', as stored),
   *  depth-first in name order. */
  walkFiles(
    charmId: string,
    path?: string,
  ): AsyncIterable<{ path: string; size: number; mode: number; modifiedMs: number }>;
  close(): void;
}

export interface BackendClientOptions {
  backend: Backend;
  /** Mints a token per user; not needed when `userAuthorization` is given. */
  key?: ServerKey;
  /** One user's own Authorization header, for requests made on that user's behalf (never stored past them). */
  userAuthorization?: string;
  /** The backends' CHARM_SERVER_PUBLIC_URL, which they require as the token issuer (for minted tokens). */
  issuer?: string;
  /** How long the connection may stay idle (connecting, waiting for an answer, streaming) before it is dropped. */
  timeoutMs?: number;
}

export function createBackendClient(options: BackendClientOptions): BackendClient {
  return new HttpBackendClient(options);
}

const DEFAULT_TIMEOUT_MS = 30_000;
const TOKEN_TTL_SECONDS = 300;
// Uploads up to this size are read (and checked) whole, then sent in one write; larger ones stream.
const WHOLE_UPLOAD_MAX_BYTES = 64 * 1024;
// Renew a cached token this long before it expires, so it cannot expire while a request is in flight.
const TOKEN_RENEW_BEFORE_EXPIRY_SECONDS = 60;
// Past this many cached tokens (users), stale ones are dropped so a scan over many users does not grow the cache.
const TOKEN_CACHE_SWEEP_SIZE = 1024;
const MAX_SOCKETS = 16;
const MAX_ERROR_BODY_BYTES = 64 * 1024;
const MAX_LISTING_BYTES = 64 * 1024 * 1024;
// Bodies up to this size are read to the end so the keep-alive socket can be reused; larger ones are dropped.
const MAX_DRAIN_BYTES = 64 * 1024;
const MAX_FILE_MODE = 0xffffffff;
const GO_MODE_DIR = 0x80000000;

class HttpBackendClient implements BackendClient {
  readonly backend: Backend;
  private readonly key: ServerKey | undefined;
  private readonly userAuthorization: string | undefined;
  private readonly issuer: string | undefined;
  private readonly timeoutMs: number;
  private readonly agent: HttpAgent;
  private readonly transport: typeof http | typeof https;
  private readonly hostname: string;
  private readonly port: string;
  private readonly tokens = new Map<string, { token: string; expiresAt: number }>();
  private closed = false;

  constructor(options: BackendClientOptions) {
    this.backend = options.backend;
    this.key = options.key;
    this.userAuthorization = options.userAuthorization;
    this.issuer = options.issuer;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const url = new URL(options.backend.httpUrl);
    const secure = url.protocol === 'https:';
    this.transport = secure ? https : http;
    this.agent = secure
      ? new https.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS })
      : new http.Agent({ keepAlive: true, maxSockets: MAX_SOCKETS });
    this.hostname = url.hostname.replace(/^\[(.*)\]$/, '$1');
    this.port = url.port;
  }

  async getFile(charmId: string, path: string) {
    const fsPath = addressablePath(path);
    const response = await this.openPath(charmId, fsPath);
    if (!response) return undefined;
    if (isDirectoryListing(response, this.backend.name)) {
      releaseResponse(response);
      throw new PathIsDirectoryError(this.backend.name, fsPath);
    }
    const mode = fileModeHeader(response, this.backend.name);
    const contentLength = response.headers['content-length'];
    return {
      body: this.relayBody(response, `GET /v1/fs${fsPath}`),
      mode,
      lastModified: response.headers['last-modified'] ?? '',
      ...(contentLength === undefined ? {} : { contentLength: Number(contentLength) }),
    };
  }

  async putFile(
    charmId: string,
    path: string,
    file: { body: Readable; size: number; mode: number; expectSha256?: string },
  ): Promise<void> {
    const fsPath = addressablePath(path);
    if (fsPath === '/') throw new RangeError('cannot upload to the root path /');
    if (!Number.isSafeInteger(file.size) || file.size < 0) throw new RangeError(`bad file size ${file.size}`);
    if (
      !Number.isInteger(file.mode) ||
      file.mode < 0 ||
      file.mode > MAX_FILE_MODE ||
      file.mode & GO_MODE_DIR
    ) {
      throw new RangeError(`bad file mode ${file.mode}: expected a Go FileMode of a regular file (e.g. 420)`);
    }
    const framing = replicaFraming();
    const description = `POST /v1/fs${fsPath}`;
    const target = `/v1/fs${fsPath}?mode=${file.mode}`;
    const headers = {
      'Content-Type': framing.contentType,
      'Content-Length': framing.head.length + file.size + framing.tail.length,
    };
    if (file.size <= WHOLE_UPLOAD_MAX_BYTES) {
      // Read and checked whole before anything is sent: the request then leaves in one write (head and body), and
      // a kept-alive connection the server had closed meanwhile can be retried with the same bytes.
      // A source silent for timeoutMs is given up, as a request would be.
      let silence: NodeJS.Timeout | undefined;
      const watch = () => {
        clearTimeout(silence);
        silence = setTimeout(() => {
          const reason = `the source of ${description} was silent for ${this.timeoutMs} ms`;
          file.body.destroy(new BackendUnavailableError(this.backend.name, reason));
        }, this.timeoutMs);
      };
      watch();
      let whole: Buffer;
      try {
        whole = await verifiedWhole(file, { backend: this.backend.name, path: fsPath }, framing, watch);
      } finally {
        clearTimeout(silence);
      }
      const incoming = await this.send('POST', charmId, target, headers, whole);
      if (incoming.statusCode !== 200) throw await this.httpError(incoming, description);
      releaseResponse(incoming);
      return;
    }
    const { request, response } = this.startRequest('POST', charmId, target, headers);
    // Read an early answer (401, 404, 413 come before the body is read) at once, before the connection drops.
    const outcome = response.then(async (incoming) => {
      if (incoming.statusCode !== 200) throw await this.httpError(incoming, description);
      releaseResponse(incoming);
    });
    outcome.catch(() => {}); // read below, once the body has stopped
    // A dead request must release the source, or the upload would wait on a stalled source forever.
    request.once('close', () => file.body.destroy());
    const answeredOrFailed = response.then(
      () => {},
      () => {},
    );

    try {
      await streamVerified(
        request,
        file,
        { backend: this.backend.name, path: fsPath },
        framing,
        answeredOrFailed,
      );
    } catch (err) {
      const sourceFailed = err instanceof ChecksumMismatchError || !request.destroyed;
      // Abort without the closing boundary: the server then fails to parse the form and writes nothing.
      request.destroy();
      if (sourceFailed) throw err;
    }
    try {
      await outcome;
    } catch (err) {
      request.destroy(); // after an early answer the body was not finished: the connection cannot be reused
      throw err;
    }
  }

  async deletePath(charmId: string, path: string): Promise<void> {
    const fsPath = addressablePath(path);
    const description = `DELETE /v1/fs${fsPath}`;
    const response = await this.request('DELETE', charmId, `/v1/fs${fsPath}`);
    if (response.statusCode !== 200) throw await this.httpError(response, description);
    releaseResponse(response);
  }

  async stat(charmId: string, path: string): Promise<FileInfo | undefined> {
    const fsPath = addressablePath(path);
    const response = await this.openPath(charmId, fsPath);
    if (!response) return undefined;
    if (isDirectoryListing(response, this.backend.name)) {
      return parseFileInfo(await readText(response, MAX_LISTING_BYTES), this.backend.name);
    }
    // A file: its size, mtime and mode (as the listing reports them) come from its parent's listing.
    releaseResponse(response);
    const name = fsPath.slice(fsPath.lastIndexOf('/') + 1);
    const parent = await this.stat(charmId, fsPath.slice(0, fsPath.lastIndexOf('/')) || '/');
    const entry = parent?.files?.find((candidate) => candidate.name === name);
    if (!entry) return undefined; // deleted in between
    if (entry.is_dir) return await this.stat(charmId, fsPath); // replaced by a directory in between
    return entry;
  }

  async *walkFiles(
    charmId: string,
    path = '/',
  ): AsyncIterable<{ path: string; size: number; mode: number; modifiedMs: number }> {
    const root = addressablePath(path);
    const info = await this.stat(charmId, root);
    if (!info) return;
    if (!info.is_dir) {
      yield { path: root, size: info.size, mode: info.mode, modifiedMs: Date.parse(info.modtime) };
      return;
    }
    yield* this.walkListing(charmId, root, info.files ?? []);
  }

  close(): void {
    this.closed = true;
    this.tokens.clear();
    this.agent.destroy();
  }

  private async *walkListing(
    charmId: string,
    directory: string,
    entries: readonly FileInfo[],
  ): AsyncIterable<{ path: string; size: number; mode: number; modifiedMs: number }> {
    // The server lists in directory order (File.ReadDir does not sort); name order makes walks comparable.
    const sorted = [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of sorted) {
      const path = directory === '/' ? `/${entry.name}` : `${directory}/${entry.name}`;
      if (!entry.is_dir) {
        yield { path, size: entry.size, mode: entry.mode, modifiedMs: Date.parse(entry.modtime) };
        continue;
      }
      const listing = await this.stat(charmId, path);
      if (!listing) continue; // deleted in between
      if (listing.is_dir) yield* this.walkListing(charmId, path, listing.files ?? []);
      else yield { path, size: listing.size, mode: listing.mode, modifiedMs: Date.parse(listing.modtime) };
    }
  }

  /** GET a path: the 200 answer, or undefined when the backend says the file does not exist. */
  private async openPath(charmId: string, fsPath: string): Promise<IncomingMessage | undefined> {
    const description = `GET /v1/fs${fsPath}`;
    const response = await this.request('GET', charmId, `/v1/fs${fsPath}`);
    if (response.statusCode === 200) return response;
    const error = await this.httpError(response, description);
    // Only this exact answer means "no such file"; a missing user is also a 404 and must not look like one.
    if (error.status === 404 && jsonMessage(error.body) === 'file not found') return undefined;
    throw error;
  }

  /** A bodyless request (see send). */
  private request(method: 'GET' | 'DELETE', charmId: string, target: string): Promise<IncomingMessage> {
    return this.send(method, charmId, target, {});
  }

  /**
   * A request whose whole body is at hand, written with its head in one go; retried once when a reused keep-alive
   * socket turns out to have been closed.
   */
  private async send(
    method: string,
    charmId: string,
    target: string,
    headers: OutgoingHttpHeaders,
    body?: Buffer,
  ): Promise<IncomingMessage> {
    const exchange = this.startRequest(method, charmId, target, headers);
    exchange.request.end(body);
    try {
      return await exchange.response;
    } catch (err) {
      if (!exchange.request.reusedSocket || !isStaleSocket((err as Error).cause)) throw err;
      const retry = this.startRequest(method, charmId, target, headers);
      retry.request.end(body);
      return await retry.response;
    }
  }

  private startRequest(
    method: string,
    charmId: string,
    target: string,
    headers: OutgoingHttpHeaders,
  ): { request: ClientRequest; response: Promise<IncomingMessage> } {
    if (this.closed) throw new Error(`the client of backend ${this.backend.name} is closed`);
    const description = `${method} ${target.replace(/\?.*/, '')}`;
    const request = this.transport.request({
      method,
      hostname: this.hostname,
      port: this.port,
      path: target,
      agent: this.agent,
      headers: { ...headers, Authorization: this.userAuthorization ?? `bearer ${this.token(charmId)}` },
    });
    request.setTimeout(this.timeoutMs, () => {
      request.destroy(
        new BackendUnavailableError(
          this.backend.name,
          `backend ${this.backend.name} was silent for ${this.timeoutMs} ms during ${description}`,
        ),
      );
    });
    const response = new Promise<IncomingMessage>((resolve, reject) => {
      request.once('response', (incoming) => {
        // Errors after the answer started surface through its body (relayBody); never as an uncaught 'error'.
        incoming.on('error', () => {});
        resolve(incoming);
      });
      request.on('error', (err) => reject(this.unavailable(description, err)));
    });
    response.catch(() => {}); // putFile may settle the upload first; the rejection is read later
    return { request, response };
  }

  private token(charmId: string): string {
    const nowSeconds = Date.now() / 1000;
    const cached = this.tokens.get(charmId);
    if (cached && cached.expiresAt - nowSeconds > TOKEN_RENEW_BEFORE_EXPIRY_SECONDS) return cached.token;
    if (this.tokens.size >= TOKEN_CACHE_SWEEP_SIZE) {
      for (const [id, entry] of this.tokens) {
        if (entry.expiresAt - nowSeconds <= TOKEN_RENEW_BEFORE_EXPIRY_SECONDS) this.tokens.delete(id);
      }
    }
    if (!this.key || !this.issuer)
      throw new Error(`no server key and issuer to mint a token for backend ${this.backend.name}`);
    const token = mintCharmJwt({
      key: this.key,
      issuer: this.issuer,
      charmId,
      ttlSeconds: TOKEN_TTL_SECONDS,
      nowSeconds,
    });
    this.tokens.set(charmId, { token, expiresAt: Math.floor(nowSeconds) + TOKEN_TTL_SECONDS });
    return token;
  }

  /** The answer's bytes as they arrive (no copy, no promise per chunk); its failures named as the backend's. */
  private relayBody(response: IncomingMessage, description: string): Readable {
    const relay = new PassThrough();
    // Kept for the reader (a destroyed stream reports it), who may not listen yet: a break must not crash the process.
    relay.on('error', () => {});
    response.once('error', (err) => relay.destroy(this.unavailable(description, err)));
    // A reader that stops early (a mismatch, a failed target) drops the connection: the rest is not read.
    relay.once('close', () => {
      if (!response.complete) response.destroy();
    });
    response.pipe(relay);
    return relay;
  }

  private async httpError(response: IncomingMessage, description: string): Promise<BackendHttpError> {
    let body: string;
    try {
      body = await readText(response, MAX_ERROR_BODY_BYTES, { truncate: true });
    } catch (err) {
      throw this.unavailable(description, err);
    }
    return new BackendHttpError(this.backend.name, description, response.statusCode ?? 0, body);
  }

  private unavailable(description: string, err: unknown): BackendUnavailableError {
    if (err instanceof BackendUnavailableError) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    const reason = code ?? (err instanceof Error ? err.message : String(err));
    return new BackendUnavailableError(
      this.backend.name,
      `backend ${this.backend.name} (${this.backend.httpUrl}) failed during ${description}: ${reason}`,
      { cause: err },
    );
  }
}

/**
 * Counts and hashes an upload's bytes as they pass: throws ChecksumMismatchError as soon as they exceed the
 * announced size, and at the end when their count or sha256 is not the expected one.
 */
class UploadCheck {
  private readonly hash = createHash('sha256');
  private readonly file: { size: number };
  private readonly target: { backend: string; path: string };
  private readonly expectedSha256: string | undefined;
  private bytes = 0;

  constructor(file: { size: number; expectSha256?: string }, target: { backend: string; path: string }) {
    this.file = file;
    this.target = target;
    this.expectedSha256 = file.expectSha256?.toLowerCase();
  }

  add(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes > this.file.size) {
      throw new ChecksumMismatchError({
        ...this.target,
        expectedSize: this.file.size,
        actualSize: this.bytes,
      });
    }
    this.hash.update(chunk);
  }

  finish(): void {
    const actualSha256 = this.hash.digest('hex');
    const expectedSha256 = this.expectedSha256;
    if (this.bytes !== this.file.size || (expectedSha256 !== undefined && actualSha256 !== expectedSha256)) {
      throw new ChecksumMismatchError({
        ...this.target,
        expectedSize: this.file.size,
        actualSize: this.bytes,
        ...(expectedSha256 === undefined ? {} : { expectedSha256 }),
        actualSha256,
      });
    }
  }
}

/** The multipart body of an upload, read whole: head, the source's bytes (checked), tail. */
async function verifiedWhole(
  file: { body: Readable; size: number; expectSha256?: string },
  target: { backend: string; path: string },
  framing: { head: Buffer; tail: Buffer },
  onChunk: () => void,
): Promise<Buffer> {
  const check = new UploadCheck(file, target);
  const chunks = [framing.head];
  for await (const chunk of file.body) {
    onChunk();
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string);
    check.add(buffer);
    chunks.push(buffer);
  }
  check.finish();
  chunks.push(framing.tail);
  return Buffer.concat(chunks);
}

/**
 * Writes an upload into `request` as the source's chunks arrive (the source paused while the request's buffer is
 * full): head, the bytes (checked), tail. Rejects with ChecksumMismatchError before the tail is written, with the
 * source's error when it fails or closes early; resolves without the tail when `stopped` settles first (the server
 * answered early: the caller reads its answer).
 */
function streamVerified(
  request: ClientRequest,
  file: { body: Readable; size: number; expectSha256?: string },
  target: { backend: string; path: string },
  framing: { head: Buffer; tail: Buffer },
  stopped: Promise<void>,
): Promise<void> {
  const { body } = file;
  const check = new UploadCheck(file, target);
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      // 'error' and 'close' stay listened to: a source failing after this must not go unhandled.
      body.off('data', onData).off('end', onEnd);
      request.off('drain', onDrain);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onData = (chunk: Buffer | string) => {
      const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
      try {
        check.add(buffer);
      } catch (err) {
        settle(err);
        return;
      }
      if (!request.write(buffer)) body.pause();
    };
    const onDrain = () => body.resume();
    const onEnd = () => {
      try {
        check.finish();
      } catch (err) {
        settle(err);
        return;
      }
      request.end(framing.tail);
      settle();
    };
    const onClose = () => settle(body.errored ?? new Error('the source closed before its end'));
    if (body.destroyed || body.readableEnded) {
      body.on('error', () => {}); // its error, if still to be emitted, is the one settled with
      onClose(); // a source already spent or cut (a lost lock) has no bytes to give
      return;
    }
    void stopped.then(() => {
      if (settled) return;
      settle();
      body.destroy(); // the server stopped reading: the rest of the source is not needed
    });
    request.on('drain', onDrain);
    body.on('data', onData).once('end', onEnd).once('error', settle).once('close', onClose);
    request.write(framing.head);
  });
}

/** The cleaned path, refused when no request URL can name it (the server re-escapes such characters). */
function addressablePath(path: string): string {
  const fsPath = cleanFsPath(path);
  if (goEscapedPath(fsPath) !== fsPath) {
    throw new RangeError(`${JSON.stringify(fsPath)} is not a stored path (it needs %-escaping in a URL)`);
  }
  return fsPath;
}

function isDirectoryListing(response: IncomingMessage, backend: string): boolean {
  const type = response.headers['content-type'];
  if (type === 'application/json') return true;
  if (type === 'application/octet-stream') return false;
  releaseResponse(response);
  throw new Error(
    `backend ${backend} answered a /v1/fs GET with Content-Type ${type}, expected a file or listing`,
  );
}

function fileModeHeader(response: IncomingMessage, backend: string): number {
  const value = response.headers['x-file-mode'];
  const mode = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : Number.NaN;
  if (!(mode <= MAX_FILE_MODE)) {
    releaseResponse(response);
    throw new Error(`backend ${backend} sent a file without a valid X-File-Mode (${value})`);
  }
  return mode;
}

/** Lets the socket go back to the pool when the rest of the body is small, else drops the connection. */
function releaseResponse(response: IncomingMessage): void {
  const length = Number(response.headers['content-length']);
  if (response.complete || (Number.isFinite(length) && length <= MAX_DRAIN_BYTES)) response.resume();
  else response.destroy();
}

async function readText(
  response: IncomingMessage,
  limitBytes: number,
  options: { truncate?: boolean } = {},
): Promise<string> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response) {
    const buffer = chunk as Buffer;
    total += buffer.length;
    if (total > limitBytes) {
      if (!options.truncate) throw new Error(`the answer is larger than ${limitBytes} bytes`);
      chunks.push(buffer.subarray(0, buffer.length - (total - limitBytes)));
      response.destroy();
      break;
    }
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function parseFileInfo(text: string, backend: string): FileInfo {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`backend ${backend} sent a directory listing that is not JSON`);
  }
  if (!isFileInfo(value))
    throw new Error(`backend ${backend} sent a directory listing of an unexpected shape`);
  return value;
}

function isFileInfo(value: unknown): value is FileInfo {
  if (typeof value !== 'object' || value === null) return false;
  const info = value as Record<string, unknown>;
  return (
    typeof info.name === 'string' &&
    typeof info.is_dir === 'boolean' &&
    typeof info.size === 'number' &&
    typeof info.modtime === 'string' &&
    typeof info.mode === 'number' &&
    (info.files === undefined || (Array.isArray(info.files) && info.files.every(isFileInfo)))
  );
}

function jsonMessage(body: string): string | undefined {
  try {
    const value: unknown = JSON.parse(body);
    const message = (value as { message?: unknown } | null)?.message;
    return typeof message === 'string' ? message : undefined;
  } catch {
    return undefined;
  }
}

function summarize(body: string): string {
  const text = (jsonMessage(body) ?? body).trim() || '(empty body)';
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}

// A keep-alive socket the server closed while idle fails the next request at once; that request is safe to retry.
function isStaleSocket(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}
