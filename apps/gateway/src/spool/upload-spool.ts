import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { BadRequestError, PayloadTooLargeError, UploadStalledError } from '../errors.ts';
import { boundaryOf, MultipartScanner } from './multipart-scanner.ts';
import type { SpoolBudget } from './spool-budget.ts';
import { spoolFilePrefix } from './spool-dir.ts';

export interface SpooledUpload {
  /** Bytes of the whole request body. */
  totalBytes: number;
  /** The file part: what a backend will store. */
  file: { size: number; sha256: string };
  contentType: string;
  /**
   * A fresh stream of the exact request body, for one backend; absent when the body was forwarded and not kept
   * (SpoolOptions.forwardedOnly): a backend that took it is then the copy to read from.
   */
  replay?: () => Readable | Buffer;
  /** Deletes the temp file, if any, and gives its bytes back to the budget. Safe to call twice. */
  discard(): Promise<void>;
}

/** Receives each chunk once it is validated (e.g. uploads to backends that run while the body arrives). */
export interface ChunkForwarder {
  /** Resolves when the chunk may be followed by the next one (backpressure). */
  write(chunk: Buffer): Promise<void>;
  /** The body is complete and valid. */
  end(): void;
  /** The body is bad or the client left: nothing forwarded may complete. */
  cancel(): void;
}

export interface SpoolOptions {
  dir: string;
  /** Bodies up to this size stay in memory; larger ones go to a temp file, so memory stays flat. */
  memoryBytes: number;
  maxUploadBytes: number;
  /** Shared by every upload: bytes are reserved before they are held (absent: no budget). */
  budget?: SpoolBudget;
  /** The client sending nothing for this long fails the upload with 408 (absent: no stall limit). */
  stallTimeoutMs?: number;
  /**
   * With a forwarder: a body past memoryBytes goes to the backends only, never to a temp file. A large body
   * written to disk as well dirtied the page cache a third time beside the two backends' own copies (each of
   * which a charm server writes twice), and past the kernel's dirty limit every writer runs at the disk's pace.
   */
  forwardedOnly?: boolean;
}

/** The next chunk of a request body, or an UploadStalledError (408) when none comes within stallMs. */
export async function nextBodyChunk(
  chunks: AsyncIterator<unknown>,
  stallMs: number | undefined,
  receivedBytes: number,
): Promise<IteratorResult<unknown>> {
  if (stallMs === undefined) return chunks.next();
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      chunks.next(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new UploadStalledError(stallMs, receivedBytes)), stallMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Reads an upload body once, byte for byte, validating its multipart framing and hashing the file part, into
 * memory (small bodies) or a temp file (large ones). Rejects with 413 past maxUploadBytes and 400 on bad framing.
 */
export async function spoolUpload(
  body: Readable,
  headers: { contentType: string | undefined; contentLength: string | undefined },
  options: SpoolOptions,
  forwarder?: ChunkForwarder,
): Promise<SpooledUpload> {
  const contentType = headers.contentType ?? '';
  const scanner = new MultipartScanner(boundaryOf(contentType));
  const declared = headers.contentLength === undefined ? undefined : Number(headers.contentLength);
  if (declared !== undefined && !(Number.isSafeInteger(declared) && declared >= 0)) {
    throw new BadRequestError(`Content-Length "${headers.contentLength}" is not a byte count`);
  }
  if (declared !== undefined && declared > options.maxUploadBytes)
    throw new PayloadTooLargeError(options.maxUploadBytes);

  const memory: Buffer[] = [];
  let file: { path: string; stream: WriteStream } | undefined;
  let total = 0;
  let reservedBytes = 0;
  let heldBack: Buffer = Buffer.alloc(0);
  const keepsLargeBody = !(forwarder && options.forwardedOnly);
  const releaseBudget = () => {
    options.budget?.release(reservedBytes);
    reservedBytes = 0;
  };
  const discard = async () => {
    releaseBudget();
    if (!file) return;
    const { path, stream } = file;
    stream.removeAllListeners('error');
    stream.on('error', () => {}); // writes still queued fail once destroyed; the file is removed anyway
    // The file is opened asynchronously: removed before the open completes, it would be created after the rm.
    const closed = stream.closed
      ? Promise.resolve()
      : new Promise<void>((resolve) => stream.once('close', () => resolve()));
    stream.destroy();
    await closed;
    await rm(path, { force: true });
  };
  try {
    if (declared !== undefined && options.budget) {
      await options.budget.reserve(declared);
      reservedBytes = declared;
    }
    // Not destroyed on an early exit: the socket must stay up for the 400/413 answer.
    const chunks = body.iterator({ destroyOnReturn: false });
    for (;;) {
      const next = await nextBodyChunk(chunks, options.stallTimeoutMs, total);
      if (next.done) break;
      const bytes = next.value as Buffer;
      total += bytes.length;
      if (total > options.maxUploadBytes) throw new PayloadTooLargeError(options.maxUploadBytes);
      if (options.budget && total > reservedBytes) {
        // No declared length (or more than declared): reserve as the bytes come.
        await options.budget.reserve(total - reservedBytes);
        reservedBytes = total;
      }
      scanner.write(bytes);
      const keeping = keepsLargeBody || total <= options.memoryBytes;
      if (!keeping) memory.length = 0; // past memoryBytes, forwarded only: what was held goes
      if (keeping && !file && total > options.memoryBytes) {
        // Only when missing: under Node's permission model a recursive mkdir needs writable parents too.
        if (!existsSync(options.dir)) mkdirSync(options.dir, { recursive: true, mode: 0o700 });
        const path = join(options.dir, `${spoolFilePrefix()}${randomBytes(12).toString('hex')}`);
        // A 1 MiB write buffer: with the default 16 KiB every 64 KiB socket chunk waited for a drain.
        file = { path, stream: createWriteStream(path, { mode: 0o600, highWaterMark: 1024 * 1024 }) };
        file.stream.on('error', (err) => body.destroy(err));
        for (const held of memory.splice(0)) file.stream.write(held);
      }
      // The body's last bytes (the closing boundary) are held back until the whole body is here and valid: a
      // charm server answers as soon as it has parsed the closing boundary, so forwarding it earlier would let a
      // backend store an upload that then turns out short of its Content-Length, or stalls.
      let forwarded: Promise<unknown> | undefined;
      if (forwarder && declared !== undefined) {
        // The held-back tail is the declared length's last bytes: every chunk before it goes on whole (one write
        // each; splitting every chunk sent each backend a tiny write per 64 KiB), the chunk it starts in is cut.
        const tailStart = Math.max(0, declared - scanner.holdBackBytes);
        const cut = Math.min(bytes.length, Math.max(0, tailStart - (total - bytes.length)));
        if (cut > 0) forwarded = forwarder.write(cut === bytes.length ? bytes : bytes.subarray(0, cut));
        if (cut < bytes.length) heldBack = Buffer.concat([heldBack, bytes.subarray(cut)]);
      } else if (forwarder) {
        const keep = scanner.holdBackBytes;
        if (bytes.length >= keep) {
          // Without copying the (often 64 KiB) chunk: what was held goes first, then all but the chunk's tail.
          const sends = [heldBack, bytes.subarray(0, bytes.length - keep)].filter((b) => b.length > 0);
          heldBack = Buffer.from(bytes.subarray(bytes.length - keep));
          forwarded = Promise.all(sends.map((b) => forwarder.write(b)));
        } else {
          const ahead = Buffer.concat([heldBack, bytes]);
          const cut = Math.max(0, ahead.length - keep);
          heldBack = Buffer.from(ahead.subarray(cut));
          if (cut > 0) forwarded = forwarder.write(ahead.subarray(0, cut));
        }
      }
      if (file) {
        if (!file.stream.write(bytes))
          await new Promise<void>((resolve) => file?.stream.once('drain', () => resolve()));
      } else if (keeping) {
        memory.push(bytes);
      }
      await forwarded;
    }
    if (declared !== undefined && total !== declared) {
      throw new BadRequestError(`the body has ${total} bytes but Content-Length said ${declared}`);
    }
    const result = scanner.finish();
    if (forwarder && heldBack.length > 0) await forwarder.write(heldBack);
    forwarder?.end();
    if (file) {
      file.stream.end();
      await finished(file.stream);
    }
    const spooled = file;
    const kept = keepsLargeBody || total <= options.memoryBytes;
    const inMemory = spooled || !kept ? undefined : Buffer.concat(memory);
    return {
      totalBytes: total,
      file: result,
      contentType,
      ...(kept && {
        replay: () =>
          inMemory ?? createReadStream((spooled as { path: string }).path, { highWaterMark: 256 * 1024 }),
      }),
      discard,
    };
  } catch (err) {
    forwarder?.cancel();
    await discard();
    body.resume(); // drain what the client still sends so it reads our answer
    throw err;
  }
}
