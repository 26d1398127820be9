import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { BackupChecksumError } from './errors.ts';

/**
 * Passes bytes through while hashing and counting them; fails (instead of ending) when they differ from the
 * expected sha256 or size, so a consumer that only commits on a clean end never commits wrong bytes. The last
 * chunk is held back until the bytes proved right: a request of the expected Content-Length fed from this
 * stream (one S3 PUT) is never complete unless they are.
 */
export function createVerifyingStream(expected: { sha256: string; size: number }, what: string): Transform {
  const hash = createHash('sha256');
  let seenBytes = 0;
  let held: Buffer | undefined;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      seenBytes += chunk.length;
      if (seenBytes > expected.size) {
        callback(new BackupChecksumError(`${what}: body is longer than the expected ${expected.size} bytes`));
        return;
      }
      hash.update(chunk);
      const previous = held;
      held = chunk;
      callback(null, previous);
    },
    flush(callback) {
      if (seenBytes !== expected.size) {
        callback(
          new BackupChecksumError(`${what}: body has ${seenBytes} bytes, expected ${expected.size} bytes`),
        );
        return;
      }
      const actual = hash.digest('hex');
      if (actual !== expected.sha256) {
        callback(new BackupChecksumError(`${what}: body has sha256 ${actual}, expected ${expected.sha256}`));
        return;
      }
      callback(null, held);
    },
  });
}
