import { createHash } from 'node:crypto';
import { singleFileMultipart } from '@cring/charm';

/** Bodies up to this size are sent as one buffer (one write); larger ones stream in chunks. */
const SINGLE_WRITE_BYTES = 2 * 1024 * 1024;
const CHUNK_BYTES = 256 * 1024;

export interface UploadBody {
  contentType: string;
  /** Bytes of the whole multipart body (the Content-Length). */
  totalBytes: number;
  /** Bytes of the file part: what a backend stores. */
  fileBytes: number;
  /** The body, chunk by chunk; the same bytes on every call, and no more memory than `block` plus one chunk. */
  chunks(): Iterable<Buffer>;
  /** The file part alone (what S3 stores), chunk by chunk, as chunks() does. */
  fileChunks(): Iterable<Buffer>;
}

/** The file's bytes: `block` repeated (and cut) to fileBytes, as views into the block. */
function* fileChunks(fileBytes: number, block: Buffer): Iterable<Buffer> {
  let left = fileBytes;
  let offset = 0;
  while (left > 0) {
    const length = Math.min(CHUNK_BYTES, left, block.length - offset);
    yield block.subarray(offset, offset + length);
    left -= length;
    offset = (offset + length) % block.length;
  }
}

/**
 * An upload framed exactly like the stock charm client's (one `data` part with a filename), its file part made by
 * repeating one block, so a 1 GiB body costs one block of memory and hashes the same on every replay.
 */
export function createUploadBody(fileBytes: number, block: Buffer): UploadBody {
  if (block.length === 0) throw new RangeError('the repeated block must not be empty');
  const { head, tail, contentType } = singleFileMultipart({ filename: '/upload.bin' });
  const totalBytes = head.length + fileBytes + tail.length;
  const single =
    totalBytes <= SINGLE_WRITE_BYTES
      ? Buffer.concat([head, ...fileChunks(fileBytes, block), tail])
      : undefined;
  return {
    contentType,
    totalBytes,
    fileBytes,
    *chunks() {
      if (single) {
        yield single;
        return;
      }
      yield head;
      yield* fileChunks(fileBytes, block);
      yield tail;
    },
    fileChunks: () => fileChunks(fileBytes, block),
  };
}

/** The framing overhead of an upload, so a body can be sized to exactly a limit (the 1 GiB upload). */
export function framingBytes(): number {
  const { head, tail } = singleFileMultipart({ filename: '/upload.bin' });
  return head.length + tail.length;
}

/** sha256 of the file part of a body built by createUploadBody with the same size and block. */
export function fileSha256(fileBytes: number, block: Buffer): string {
  const hash = createHash('sha256');
  for (const chunk of fileChunks(fileBytes, block)) hash.update(chunk);
  return hash.digest('hex');
}
