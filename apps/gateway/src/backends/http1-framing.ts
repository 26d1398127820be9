/**
 * The HTTP/1.1 response framing a backend answer uses (RFC 9112 §4–7), read straight off the socket's own buffers:
 * the head parsed once, the body's framing (Content-Length, chunked, or until close) walked without copying, so
 * its bytes leave as slices of the buffers they arrived in. Malformed framing throws FramingError.
 */

/** The answer broke the framing rules: the connection cannot be trusted any further. */
export class FramingError extends Error {
  constructor(message: string) {
    super(`malformed backend answer: ${message}`);
    this.name = 'FramingError';
  }
}

export interface AnswerHead {
  statusCode: number;
  statusMessage: string;
  /** Header names and values as received, alternating (as IncomingMessage.rawHeaders). */
  rawHeaders: string[];
  /** Lower-cased names; repeated headers joined with ", " (Content-Length must not differ). */
  headers: Record<string, string>;
  /** The server keeps the connection open after this answer. */
  keepAlive: boolean;
}

/** A head larger than this is refused (Go's server writes a few hundred bytes). */
export const MAX_HEAD_BYTES = 64 * 1024;
const HEAD_END = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: (.*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Where the head ends in `bytes` (the index just past its blank line), or -1 when it has not all arrived;
 * `searchFrom` skips what an earlier call already searched.
 */
export function headEnd(bytes: Buffer, searchFrom = 0): number {
  const at = bytes.indexOf(HEAD_END, Math.max(0, searchFrom - 3));
  if (at === -1) {
    if (bytes.length > MAX_HEAD_BYTES) throw new FramingError(`a head larger than ${MAX_HEAD_BYTES} bytes`);
    return -1;
  }
  return at + HEAD_END.length;
}

/** Parses a complete head (status line, header lines, blank line). */
export function parseHead(head: Buffer): AnswerHead {
  const lines = head.toString('latin1', 0, head.length - HEAD_END.length).split('\r\n');
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status) throw new FramingError(`status line "${(lines[0] ?? '').slice(0, 80)}"`);
  const rawHeaders: string[] = [];
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(name)) throw new FramingError(`header line "${line.slice(0, 80)}"`);
    const value = line.slice(colon + 1).trim();
    if (/[\0\r\n]/.test(value)) throw new FramingError(`a control character in header ${name}`);
    rawHeaders.push(name, value);
    const lower = name.toLowerCase();
    const before = headers[lower];
    if (before !== undefined && lower === 'content-length' && before !== value)
      throw new FramingError('two different Content-Length headers');
    headers[lower] = before === undefined || lower === 'content-length' ? value : `${before}, ${value}`;
  }
  const connection = (headers.connection ?? '').toLowerCase();
  const http10 = status[1] === '0';
  return {
    statusCode: Number(status[2]),
    statusMessage: status[3] ?? '',
    rawHeaders,
    headers,
    keepAlive: http10 ? connection.includes('keep-alive') : !connection.includes('close'),
  };
}

/** Walks a body's bytes as they arrive: what of each buffer is payload, and where the body ends. */
export interface BodyDecoder {
  /**
   * The payload slices of `bytes` (views into it, no copies), and, once the body is complete, the bytes after
   * its end (empty when nothing followed). Throws FramingError on malformed framing.
   */
  next(bytes: Buffer): { payload: Buffer[]; rest?: Buffer };
  /** The connection closed: whether that completes the body (only for a body framed by close). */
  closedCompletes(): boolean;
}

/** The decoder the head calls for; `bodyless` for HEAD requests (a length there describes the GET). */
export function bodyDecoder(head: AnswerHead, bodyless: boolean): BodyDecoder | undefined {
  if (bodyless || head.statusCode < 200 || head.statusCode === 204 || head.statusCode === 304)
    return undefined;
  const transferEncoding = head.headers['transfer-encoding'];
  if (transferEncoding !== undefined) {
    if (transferEncoding.toLowerCase() !== 'chunked')
      throw new FramingError(`Transfer-Encoding "${transferEncoding.slice(0, 40)}"`);
    return chunkedDecoder();
  }
  const length = head.headers['content-length'];
  if (length !== undefined) {
    if (!/^\d{1,15}$/.test(length)) throw new FramingError(`Content-Length "${length.slice(0, 40)}"`);
    return lengthDecoder(Number(length));
  }
  return untilCloseDecoder();
}

function lengthDecoder(length: number): BodyDecoder {
  let remaining = length;
  return {
    next(bytes) {
      if (bytes.length < remaining) {
        remaining -= bytes.length;
        return { payload: bytes.length > 0 ? [bytes] : [] };
      }
      const payload = remaining > 0 ? [bytes.subarray(0, remaining)] : [];
      const rest = bytes.subarray(remaining);
      remaining = 0;
      return { payload, rest };
    },
    closedCompletes: () => false,
  };
}

function untilCloseDecoder(): BodyDecoder {
  return { next: (bytes) => ({ payload: bytes.length > 0 ? [bytes] : [] }), closedCompletes: () => true };
}

// A chunk-size line, trailer line or extension longer than this is refused.
const MAX_LINE_BYTES = 4096;
const MAX_CHUNK_HEX_DIGITS = 12;

/**
 * Chunked transfer coding: size line (hex, optional extensions), data, CRLF; a zero-size chunk, trailer lines
 * and a blank line end it. Lines may be split across buffers; data slices point into the buffers themselves.
 */
function chunkedDecoder(): BodyDecoder {
  type State = 'size' | 'data' | 'data-end' | 'trailer';
  let state: State = 'size';
  let line = ''; // the partial size or trailer line
  let remaining = 0; // data bytes left in the current chunk
  let dataEnd = ''; // the CRLF after data, as far as it came
  let done = false;
  return {
    next(bytes) {
      if (done) return { payload: [], rest: bytes };
      const payload: Buffer[] = [];
      let at = 0;
      while (at < bytes.length) {
        if (state === 'data') {
          const take = Math.min(remaining, bytes.length - at);
          payload.push(bytes.subarray(at, at + take));
          at += take;
          remaining -= take;
          if (remaining === 0) state = 'data-end';
          continue;
        }
        if (state === 'data-end') {
          dataEnd += String.fromCharCode(bytes[at] as number);
          at++;
          if (!'\r\n'.startsWith(dataEnd)) throw new FramingError('a chunk not followed by CRLF');
          if (dataEnd === '\r\n') {
            dataEnd = '';
            state = 'size';
          }
          continue;
        }
        // A line: the size line or a trailer line, up to LF.
        const lf = bytes.indexOf(0x0a, at);
        const end = lf === -1 ? bytes.length : lf + 1;
        line += bytes.toString('latin1', at, end);
        at = end;
        if (line.length > MAX_LINE_BYTES) throw new FramingError('a chunk line too long');
        if (lf === -1) continue;
        if (!line.endsWith('\r\n')) throw new FramingError('a bare LF in chunk framing');
        const text = line.slice(0, -2);
        line = '';
        if (state === 'trailer') {
          if (text === '') {
            done = true;
            return { payload, rest: bytes.subarray(at) };
          }
          if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:/.test(text)) throw new FramingError('a malformed trailer');
          continue;
        }
        const size = /^([0-9A-Fa-f]+)[ \t]*(;.*)?$/.exec(text);
        if (!size || (size[1] as string).length > MAX_CHUNK_HEX_DIGITS)
          throw new FramingError(`chunk size "${text.slice(0, 40)}"`);
        remaining = Number.parseInt(size[1] as string, 16);
        state = remaining === 0 ? 'trailer' : 'data';
      }
      return { payload };
    },
    closedCompletes: () => false,
  };
}
