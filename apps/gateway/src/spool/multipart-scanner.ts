import { createHash, type Hash } from 'node:crypto';
import { BadRequestError } from '../errors.ts';

const MAX_PART_HEADER_BYTES = 16 * 1024;
// Slack for whitespace in what may follow the closing boundary (see maxEpilogueBytes).
const EPILOGUE_SLACK_BYTES = 16;
const CRLF_CRLF = Buffer.from('\r\n\r\n');

/**
 * The file bytes of a whole request body the scanner accepted: they start right after the only part's headers (the
 * body starts with the boundary line, and no header line is empty) and run for the file's size.
 */
export function fileBytesOf(body: Buffer, size: number): Buffer {
  const start = body.indexOf(CRLF_CRLF) + CRLF_CRLF.length;
  return body.subarray(start, start + size);
}

/** The boundary of a `multipart/form-data` Content-Type, or a 400 saying what is wrong. */
export function boundaryOf(contentType: string | undefined): string {
  const match = /^multipart\/form-data\s*;(?:.*;)?\s*boundary=(?:"([^"]{1,70})"|([^\s;]{1,70}))/i.exec(
    contentType ?? '',
  );
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) {
    throw new BadRequestError(
      `an upload must be multipart/form-data with a boundary (got Content-Type "${contentType ?? ''}")`,
    );
  }
  return boundary;
}

/**
 * Checks, while the bytes stream past, that an upload is what the stock charm client sends: one part named
 * `data` with a filename, framed by the boundary. It also hashes (sha256) and counts the file bytes of that part,
 * i.e. exactly what the backend will store. Nothing is buffered beyond the boundary length.
 */
export class MultipartScanner {
  private readonly opening: Buffer;
  private readonly delimiter: Buffer;
  private phase: 'opening' | 'headers' | 'data' | 'closing' | 'done' = 'opening';
  private pending: Buffer = Buffer.alloc(0);
  private readonly hash: Hash = createHash('sha256');
  private dataBytes = 0;
  private epilogueBytes = 0;
  /**
   * What may follow the closing boundary. The stock client closes its multipart writer twice, so its body ends
   * `\r\n--B--\r\n\r\n--B--\r\n`: a second closing line (which the server ignores) plus a little slack.
   */
  private readonly maxEpilogueBytes: number;
  /** A suffix this long always holds the whole closing boundary and epilogue (see spoolUpload's holdback). */
  readonly holdBackBytes: number;

  constructor(boundary: string) {
    this.opening = Buffer.from(`--${boundary}\r\n`);
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
    this.maxEpilogueBytes = this.delimiter.length + 6 + EPILOGUE_SLACK_BYTES;
    this.holdBackBytes = this.delimiter.length + 2 + this.maxEpilogueBytes;
  }

  write(chunk: Buffer): void {
    let buffer =
      this.phase === 'data'
        ? this.acrossSeam(chunk)
        : this.pending.length > 0
          ? Buffer.concat([this.pending, chunk])
          : chunk;
    this.pending = Buffer.alloc(0);
    while (buffer.length > 0) {
      switch (this.phase) {
        case 'opening': {
          if (buffer.length < this.opening.length) {
            if (!this.opening.subarray(0, buffer.length).equals(buffer))
              this.malformed('it does not start with the boundary');
            this.pending = buffer;
            return;
          }
          if (!buffer.subarray(0, this.opening.length).equals(this.opening))
            this.malformed('it does not start with the boundary');
          buffer = buffer.subarray(this.opening.length);
          this.phase = 'headers';
          break;
        }
        case 'headers': {
          const end = buffer.indexOf(CRLF_CRLF);
          if (end < 0) {
            if (buffer.length > MAX_PART_HEADER_BYTES) this.malformed('its part headers are too long');
            this.pending = buffer;
            return;
          }
          this.checkPartHeaders(buffer.subarray(0, end).toString('latin1'));
          buffer = buffer.subarray(end + CRLF_CRLF.length);
          this.phase = 'data';
          break;
        }
        case 'data': {
          const end = buffer.indexOf(this.delimiter);
          if (end >= 0) {
            this.addData(buffer.subarray(0, end));
            buffer = buffer.subarray(end + this.delimiter.length);
            this.phase = 'closing';
            break;
          }
          // Keep back (a copy of) what could be the start of a delimiter split across chunks.
          const safe = Math.max(0, buffer.length - (this.delimiter.length - 1));
          this.addData(buffer.subarray(0, safe));
          this.pending = Buffer.from(buffer.subarray(safe));
          return;
        }
        case 'closing': {
          if (buffer.length < 2) {
            this.pending = buffer;
            return;
          }
          if (buffer[0] !== 0x2d || buffer[1] !== 0x2d)
            this.malformed('it has more than one part (send only "data")');
          this.phase = 'done';
          buffer = buffer.subarray(2);
          break;
        }
        case 'done':
          // An epilogue the server ignores; a short one only, so the held-back suffix always covers the boundary.
          this.epilogueBytes += buffer.length;
          if (this.epilogueBytes > this.maxEpilogueBytes)
            this.malformed('it has data after the closing boundary');
          return;
      }
    }
  }

  /** Call at the end of the body: the file's size and sha256, or a 400 when the framing is incomplete. */
  finish(): { size: number; sha256: string } {
    if (this.phase !== 'done') this.malformed('it ends before the closing boundary');
    return { size: this.dataBytes, sha256: this.hash.digest('hex') };
  }

  /**
   * In the data phase only the few held-back bytes and the start of the next chunk can hide a delimiter split
   * across chunks: check that seam without copying the whole (often 64 KiB) chunk.
   */
  private acrossSeam(chunk: Buffer): Buffer {
    const held = this.pending.length;
    const d = this.delimiter.length;
    if (held === 0) return chunk;
    // A tiny chunk cannot settle the seam yet: join it (cheaply) and let the data phase keep back what it must.
    if (chunk.length < d - 1) return Buffer.concat([this.pending, chunk]);
    const seam = Buffer.concat([this.pending, chunk.subarray(0, d - 1)]);
    const end = seam.indexOf(this.delimiter);
    if (end >= 0) {
      // The part ends inside the seam (a delimiter cannot fit in the chunk's first d-1 bytes alone).
      this.addData(seam.subarray(0, end));
      this.phase = 'closing';
      return chunk.subarray(end + d - held);
    }
    this.addData(this.pending);
    return chunk;
  }

  private addData(bytes: Buffer): void {
    this.dataBytes += bytes.length;
    this.hash.update(bytes);
  }

  private checkPartHeaders(headers: string): void {
    const disposition = headers.split('\r\n').find((line) => /^content-disposition\s*:/i.test(line)) ?? '';
    if (!/;\s*name="data"/i.test(disposition)) this.malformed('its part is not named "data"');
    if (!/;\s*filename=/i.test(disposition)) this.malformed('its "data" part has no filename');
    // Go's multipart reader may decode such a part (quoted-printable), so the stored bytes would not be these.
    if (headers.split('\r\n').some((line) => /^content-transfer-encoding\s*:/i.test(line)))
      this.malformed('its part has a Content-Transfer-Encoding (send the bytes as they are)');
  }

  private malformed(what: string): never {
    throw new BadRequestError(`malformed multipart upload: ${what}`);
  }
}
