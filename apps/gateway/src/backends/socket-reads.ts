/**
 * File reads (GET and HEAD /v1/fs/…) from backends over a keep-alive pool of plain sockets, one pool per backend,
 * and file writes whose body is one buffer (POST /v1/fs/…: head and body leave in one socket write).
 * The answer's head is parsed once (http1-framing.ts); its body leaves as slices of the socket's own buffers, the
 * chunk framing stepped over rather than re-parsed into a stream, so a download costs the gateway about what a
 * TCP hop costs. Like backend-http.ts: an idle timeout on each exchange and a deadline for the whole of it; an
 * answer abandoned midway (the client left, a size mismatch) destroys its socket, never returns it to the pool.
 */
import { isIP, type Socket, connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Backend } from '@cring/charm';
import { BackendTransportError, RequestCancelledError } from './backend-http.ts';
import { backendTarget } from './backend-url.ts';
import {
  type AnswerHead,
  type BodyDecoder,
  bodyDecoder,
  FramingError,
  headEnd,
  parseHead,
} from './http1-framing.ts';

export interface SocketReadRequest {
  method: 'GET' | 'HEAD' | 'POST';
  /** Path and query, origin form, as sent to the backend. */
  pathAndQuery: string;
  /** Raw header pairs (Host is set here; Content-Length too, for a body). */
  headers: readonly string[];
  /** A POST's whole body, sent with the head in one write. */
  body?: Buffer;
  /** Aborting it cuts the exchange (its connection is closed): the gateway gave up on it. */
  signal?: AbortSignal;
}

/** The body of a request whose head already left (see request's streamed form). */
export interface StreamedRequest {
  /** Writes body bytes; false: wait for `drained()` before the next write. */
  write(chunk: Buffer): boolean;
  /** Resolves once the connection takes more, or once the exchange is over (cut, or answered early). */
  drained(): Promise<void>;
  /** The body is complete: with fewer bytes than its Content-Length the exchange fails (it would hang). */
  end(): void;
}

/** Where the body's bytes go: `data` false asks for a pause until `resume` is called. */
interface BodySink {
  data(payload: Buffer[]): boolean;
  end(): void;
  fail(err: Error): void;
}

/** Bytes that may go on a request line or in a header value as they are. */
const REQUEST_TARGET = /^[\x21-\x7e]+$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** One backend's answer: its head at once, its body read by exactly one of the methods below (or destroyed). */
export class BackendAnswer {
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly rawHeaders: string[];
  readonly headers: Record<string, string>;
  readonly #exchange: Exchange;

  constructor(head: AnswerHead, exchange: Exchange) {
    this.statusCode = head.statusCode;
    this.statusMessage = head.statusMessage;
    this.rawHeaders = head.rawHeaders;
    this.headers = head.headers;
    this.#exchange = exchange;
  }

  /** The whole body; rejects (and drops the connection) past limitBytes or when the answer breaks. */
  read(limitBytes = 1024 * 1024): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      this.#exchange.drain({
        data: (payload) => {
          for (const bytes of payload) {
            size += bytes.length;
            chunks.push(bytes);
          }
          if (size > limitBytes) {
            this.destroy();
            reject(new Error(`answer larger than ${limitBytes} bytes`));
          }
          return true;
        },
        end: () => resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)),
        fail: reject,
      });
    });
  }

  /** The whole body when it is exactly `size` bytes; undefined when it is not, or the answer broke. */
  async readExactly(size: number): Promise<Buffer | undefined> {
    const body = await this.read(size).catch(() => undefined);
    return body?.length === size ? body : undefined;
  }

  /** Hands the body to `sink` as it arrives (see BodySink); `resume()` after a `data` that returned false. */
  drain(sink: BodySink): void {
    this.#exchange.drain(sink);
  }

  resume(): void {
    this.#exchange.resume();
  }

  /** Abandons the answer: its connection is closed, not reused. */
  destroy(): void {
    this.#exchange.abandon();
  }

  /** Called once the exchange is over: body read (connection pooled again) or connection closed. */
  onFinished(listener: () => void): void {
    this.#exchange.onFinished(listener);
  }
}

/** A pooled connection: its listeners stay for its whole life and hand events to the exchange using it. */
interface PooledSocket {
  socket: Socket;
  key: string;
  exchange?: Exchange;
  /** Set once the socket carried a complete exchange (a reused one may have been closed by the server). */
  reused: boolean;
}

/** One request and its answer on one socket. */
class Exchange {
  readonly #conn: PooledSocket;
  readonly #method: SocketReadRequest['method'];
  readonly #release: (conn: PooledSocket, reusable: boolean) => void;
  #head: Buffer | undefined = Buffer.alloc(0); // the head as it arrives; undefined once parsed
  #decoder: BodyDecoder | undefined;
  #keepAlive = false;
  #sink: BodySink | undefined;
  #queued: Buffer[] = []; // body bytes that came before a sink
  #answered?: (answer: BackendAnswer) => void;
  #failed?: (err: Error) => void;
  #sawBytes = false;
  /** How the body ended, once it did: complete, or the error that broke (or abandoned) it. */
  #outcome: { error?: Error } | undefined;
  #released = false;
  /** The request went out whole (false while a streamed body is still being written). */
  #requestSent = true;
  /** A streamed body's writer waiting for the connection to take more (see startStreamed). */
  #drainWaiter: (() => void) | undefined;
  readonly #wakeDrainWaiter = () => this.#drainWaiter?.();
  #finishedListeners: (() => void)[] = [];
  #deadline: NodeJS.Timeout | undefined;

  constructor(
    conn: PooledSocket,
    method: SocketReadRequest['method'],
    release: (conn: PooledSocket, reusable: boolean) => void,
  ) {
    this.#conn = conn;
    this.#method = method;
    this.#release = release;
  }

  start(
    request: Buffer | string | undefined,
    deadlineMs: number | undefined,
    onDeadline: () => void,
  ): Promise<BackendAnswer> {
    return new Promise((resolve, reject) => {
      this.#answered = resolve;
      this.#failed = reject;
      if (deadlineMs !== undefined) {
        this.#deadline = setTimeout(() => {
          onDeadline();
          this.fail(new Error(`the exchange took longer than its ${deadlineMs} ms deadline`));
        }, deadlineMs);
      }
      if (typeof request === 'string') this.#conn.socket.write(request, 'latin1');
      else if (request) this.#conn.socket.write(request);
    });
  }

  /**
   * Starts a request whose body of `bodyBytes` follows (StreamedRequest): the head waits to leave with the first
   * body bytes. An answer that comes before the body's last byte went out (a refusal) closes the connection
   * afterwards: the server may still be reading the rest, so it cannot carry another request.
   */
  startStreamed(
    head: string,
    bodyBytes: number,
    deadlineMs: number | undefined,
    onDeadline: () => void,
  ): { answer: Promise<BackendAnswer>; body: StreamedRequest } {
    this.#requestSent = bodyBytes === 0;
    const { socket } = this.#conn;
    let pendingHead: string | undefined = head;
    let written = 0;
    const answer = this.start(undefined, deadlineMs, onDeadline);
    const body: StreamedRequest = {
      write: (chunk) => {
        if (this.#released) return true; // cut or answered early: the outcome says so, the bytes go nowhere
        written += chunk.length;
        if (written > bodyBytes) {
          this.fail(new Error(`more body bytes than its Content-Length of ${bodyBytes}`));
          return true;
        }
        if (written === bodyBytes) this.#requestSent = true;
        if (pendingHead === undefined) return socket.write(chunk);
        socket.cork();
        socket.write(pendingHead, 'latin1');
        pendingHead = undefined;
        const more = socket.write(chunk);
        socket.uncork();
        return more;
      },
      drained: () =>
        new Promise<void>((resolve) => {
          if (this.#released || !socket.writableNeedDrain) return resolve();
          // One waiter at a time (the caller waits before writing on): woken by the drain or by the exchange's end.
          this.#drainWaiter = () => {
            socket.off('drain', this.#wakeDrainWaiter);
            this.#drainWaiter = undefined;
            resolve();
          };
          socket.once('drain', this.#wakeDrainWaiter);
        }),
      end: () => {
        if (this.#released) return;
        if (written !== bodyBytes)
          this.fail(new Error(`the body ended after ${written} of its ${bodyBytes} bytes`));
        else if (pendingHead !== undefined) socket.write(pendingHead, 'latin1');
        pendingHead = undefined;
      },
    };
    return { answer, body };
  }

  /** Cuts the exchange, answered or not, with `error` (the connection is closed). */
  cancel(error: Error): void {
    this.fail(error);
  }

  /** Nothing of the answer arrived yet: a reused socket that failed now was closed by the server meanwhile. */
  get silent(): boolean {
    return !this.#sawBytes;
  }

  bytes(chunk: Buffer): void {
    this.#sawBytes = true;
    if (this.#outcome) return;
    if (this.#head === undefined) {
      this.body(chunk);
      return;
    }
    const searched = this.#head.length;
    const bytes = searched === 0 ? chunk : Buffer.concat([this.#head, chunk]);
    let end: number;
    let head: AnswerHead;
    try {
      end = headEnd(bytes, searched);
      if (end === -1) {
        this.#head = bytes;
        return;
      }
      head = parseHead(bytes.subarray(0, end));
      if (head.statusCode < 200) throw new FramingError(`an interim ${head.statusCode} answer`);
      this.#decoder = bodyDecoder(head, this.#method === 'HEAD');
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    this.#head = undefined;
    this.#keepAlive = head.keepAlive;
    const rest = bytes.subarray(end);
    this.#answered?.(new BackendAnswer(head, this));
    if (!this.#decoder) {
      this.complete(rest);
      return;
    }
    this.body(rest); // even empty: a Content-Length of 0 completes with the head (a write's 200)
  }

  private body(chunk: Buffer): void {
    if (!this.#sink) {
      this.#queued.push(chunk);
      if (!this.#released) this.#conn.socket.pause();
      return;
    }
    let decoded: ReturnType<BodyDecoder['next']>;
    try {
      decoded = (this.#decoder as BodyDecoder).next(chunk);
    } catch (err) {
      this.fail(err as Error);
      return;
    }
    const more = decoded.payload.length === 0 || this.#sink.data(decoded.payload);
    if (this.#outcome) return; // the sink gave up
    if (decoded.rest !== undefined) {
      this.complete(decoded.rest);
      return;
    }
    if (!more && !this.#released) this.#conn.socket.pause();
  }

  drain(sink: BodySink): void {
    if (this.#sink) throw new Error('an answer body is read once');
    this.#sink = sink;
    if (this.#outcome?.error) {
      sink.fail(this.#outcome.error);
      return;
    }
    const queued = this.#queued;
    this.#queued = [];
    for (const chunk of queued) {
      this.body(chunk);
      if (this.#outcome?.error) return;
    }
    if (this.#outcome) {
      // no body (HEAD, 204, 304), or one the connection's close ended
      sink.end();
      return;
    }
    this.#conn.socket.resume();
  }

  resume(): void {
    if (!this.#released && this.#queued.length === 0) this.#conn.socket.resume();
  }

  /** The socket closed (or broke) while this exchange used it. */
  closed(err: Error | undefined): void {
    if (this.#outcome) return;
    if (this.#head === undefined && !err && this.#decoder?.closedCompletes()) {
      // A body framed by the connection's end: complete now; a sink that comes later still gets the queued bytes.
      this.#outcome = {};
      this.finish(false);
      this.#sink?.end();
      return;
    }
    this.fail(err ?? new Error('the backend closed the connection mid-answer'));
  }

  abandon(): void {
    if (!this.#outcome) this.fail(new Error('the answer was abandoned'), true);
  }

  onFinished(listener: () => void): void {
    if (this.#released) listener();
    else this.#finishedListeners.push(listener);
  }

  /** The body ended at a message boundary: the connection serves the next request, unless bytes followed. */
  private complete(rest: Buffer): void {
    this.#outcome = {};
    this.finish(this.#keepAlive && rest.length === 0 && this.#requestSent);
    this.#sink?.end();
  }

  private fail(error: Error, abandoned = false): void {
    if (this.#outcome) return;
    this.#outcome = { error };
    this.#queued = [];
    this.finish(false);
    if (this.#head !== undefined) this.#failed?.(error);
    else if (!abandoned) this.#sink?.fail(error);
  }

  private finish(reusable: boolean): void {
    if (this.#released) return;
    this.#released = true;
    this.#wakeDrainWaiter();
    clearTimeout(this.#deadline);
    this.#release(this.#conn, reusable);
    for (const listener of this.#finishedListeners.splice(0)) listener();
  }
}

export interface SocketReadsOptions {
  /** An exchange silent this long (either way) is cut. */
  idleTimeoutMs: number;
  /** The whole exchange; past it the exchange is cut. */
  responseDeadlineMs?: number;
  onDeadline?: () => void;
  /** Idle connections kept per backend; more are closed when their exchange ends. */
  maxIdlePerBackend: number;
  /** An idle connection unused this long is closed. */
  keepIdleMs: number;
}

/** GET and HEAD of files over pooled sockets. */
export function createSocketReads(options: SocketReadsOptions) {
  const idle = new Map<string, PooledSocket[]>();
  const opened = new Map<string, number>();
  const active = new Map<string, number>();
  let closing = false;

  function connect(key: string, target: ReturnType<typeof backendTarget>): PooledSocket {
    const socket = target.https
      ? tlsConnect({
          host: target.hostname,
          port: target.port,
          servername: isIP(target.hostname) ? undefined : target.hostname,
        })
      : tcpConnect({ host: target.hostname, port: target.port });
    socket.setNoDelay(true);
    const conn: PooledSocket = { socket, key, reused: false };
    let error: Error | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (conn.exchange) conn.exchange.bytes(chunk);
      else socket.destroy(); // bytes nobody asked for: the connection is out of step
    });
    socket.on('error', (err) => {
      error = err;
    });
    socket.on('timeout', () =>
      socket.destroy(conn.exchange ? new Error(`no traffic for ${options.idleTimeoutMs} ms`) : undefined),
    );
    socket.once('close', () => {
      const list = idle.get(key);
      const at = list?.indexOf(conn) ?? -1;
      if (list && at !== -1) list.splice(at, 1);
      conn.exchange?.closed(error ?? (socket.readableEnded ? undefined : new Error('connection reset')));
    });
    opened.set(key, (opened.get(key) ?? 0) + 1);
    return conn;
  }

  function release(conn: PooledSocket, reusable: boolean): void {
    conn.exchange = undefined;
    active.set(conn.key, (active.get(conn.key) ?? 1) - 1);
    const list = idle.get(conn.key) ?? [];
    if (!reusable || closing || conn.socket.destroyed || list.length >= options.maxIdlePerBackend) {
      conn.socket.destroy();
      return;
    }
    conn.reused = true;
    conn.socket.setTimeout(options.keepIdleMs);
    conn.socket.resume(); // a close or stray byte is noticed while idle
    list.push(conn);
    idle.set(conn.key, list);
  }

  function take(key: string): PooledSocket | undefined {
    const list = idle.get(key);
    while (list && list.length > 0) {
      const conn = list.pop() as PooledSocket;
      if (!conn.socket.destroyed && conn.socket.writable) return conn;
    }
    return undefined;
  }

  function requestHead(req: SocketReadRequest, target: ReturnType<typeof backendTarget>): string {
    if (!REQUEST_TARGET.test(target.path))
      throw new Error('a request target with bytes a request line cannot carry');
    let head = `${req.method} ${target.path} HTTP/1.1\r\nHost: ${target.host}\r\n`;
    for (let i = 0; i + 1 < req.headers.length; i += 2) {
      const name = req.headers[i] as string;
      const value = req.headers[i + 1] as string;
      if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(value) || name.toLowerCase() === 'host')
        throw new Error(`a header that cannot be forwarded as it is (${name.slice(0, 40)})`);
      head += `${name}: ${value}\r\n`;
    }
    // A body framed by another length would bleed into the next request on the connection.
    if (req.body) {
      const declared = req.headers.filter(
        (_, i) => i % 2 === 1 && /^content-length$/i.test(req.headers[i - 1] ?? ''),
      );
      if (declared.some((value) => value !== String(req.body?.length)))
        throw new Error(`a Content-Length that is not the body's ${req.body.length} bytes`);
      if (declared.length === 0) head += `Content-Length: ${req.body.length}\r\n`;
    }
    return `${head}\r\n`;
  }

  /** Takes a pooled connection (or opens one) for an exchange; its cancel follows `signal`. */
  function exchangeFor(
    backend: Backend,
    target: ReturnType<typeof backendTarget>,
    method: SocketReadRequest['method'],
    signal: AbortSignal | undefined,
  ): { conn: PooledSocket; exchange: Exchange } {
    if (closing) throw new BackendTransportError(backend.name, new Error('the gateway is shutting down'));
    if (signal?.aborted) throw new RequestCancelledError(backend.name);
    const key = backend.name; // a backend's origin is fixed for the process's life
    const conn = take(key) ?? connect(key, target);
    conn.socket.setTimeout(options.idleTimeoutMs);
    const exchange = new Exchange(conn, method, release);
    conn.exchange = exchange;
    active.set(key, (active.get(key) ?? 0) + 1);
    const cancel = () => exchange.cancel(new RequestCancelledError(backend.name));
    signal?.addEventListener('abort', cancel, { once: true });
    exchange.onFinished(() => signal?.removeEventListener('abort', cancel));
    return { conn, exchange };
  }

  /**
   * A POST whose body is written as it arrives (`body`, with backpressure); `answer` resolves once the answer's
   * head is here. Never retried: the body's bytes are gone once written.
   */
  function stream(
    backend: Backend,
    req: Omit<SocketReadRequest, 'body'> & { method: 'POST' },
  ): { answer: Promise<BackendAnswer>; body: StreamedRequest } {
    const lengths = req.headers.filter(
      (_, i) => i % 2 === 1 && /^content-length$/i.test(req.headers[i - 1] ?? ''),
    );
    const bodyBytes = Number(lengths[0]);
    if (lengths.length !== 1 || !/^\d{1,15}$/.test(lengths[0] ?? ''))
      throw new Error('a streamed body needs its Content-Length');
    const target = backendTarget(backend, req.pathAndQuery);
    const head = requestHead(req, target);
    const { exchange } = exchangeFor(backend, target, req.method, req.signal);
    const started = exchange.startStreamed(head, bodyBytes, options.responseDeadlineMs, () =>
      options.onDeadline?.(),
    );
    const answer = started.answer.catch((err: unknown) => {
      throw err instanceof RequestCancelledError ? err : new BackendTransportError(backend.name, err);
    });
    return { answer, body: started.body };
  }

  async function request(backend: Backend, req: SocketReadRequest): Promise<BackendAnswer> {
    const target = backendTarget(backend, req.pathAndQuery);
    const head = requestHead(req, target);
    // One buffer, so head and body leave in one write (one segment for a small body).
    const message = req.body ? Buffer.concat([Buffer.from(head, 'latin1'), req.body]) : head;
    for (let attempt = 0; ; attempt++) {
      const { conn, exchange } = exchangeFor(backend, target, req.method, req.signal);
      try {
        return await exchange.start(message, options.responseDeadlineMs, () => options.onDeadline?.());
      } catch (err) {
        if (err instanceof RequestCancelledError) throw err;
        // A kept-alive connection the server closed just before this request: ask once more on a new one. A
        // POST too: its whole body goes again under the same lock and intent, so a server that did take the
        // first one (and died before answering) stores the same bytes.
        if (conn.reused && exchange.silent && attempt === 0) continue;
        throw new BackendTransportError(backend.name, err);
      }
    }
  }

  return {
    request,
    stream,
    /** Connections per backend: opened since start, in use now, idle now (metrics, tests). */
    stats(): Record<string, { opened: number; active: number; idle: number }> {
      const out: Record<string, { opened: number; active: number; idle: number }> = {};
      for (const [key, count] of opened)
        out[key] = { opened: count, active: active.get(key) ?? 0, idle: idle.get(key)?.length ?? 0 };
      return out;
    },
    close(): void {
      closing = true;
      for (const list of idle.values()) for (const conn of list.splice(0)) conn.socket.destroy();
    },
  };
}

export type SocketReads = ReturnType<typeof createSocketReads>;
