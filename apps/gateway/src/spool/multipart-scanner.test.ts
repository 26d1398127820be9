import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { singleFileMultipart } from '@cring/charm';
import { boundaryOf, fileBytesOf, MultipartScanner } from './multipart-scanner.ts';

describe('fileBytesOf', () => {
  it("returns exactly the file part of a body the scanner accepted, even bytes that look like a part's head", () => {
    const file = Buffer.concat([Buffer.from('\r\n\r\n--not-the-boundary\r\n\r\n'), randomBytes(5_000)]);
    const { contentType, head, tail } = singleFileMultipart();
    const body = Buffer.concat([head, file, tail]);
    const scanner = new MultipartScanner(boundaryOf(contentType));
    scanner.write(body);
    const scanned = scanner.finish();
    assert.equal(scanned.size, file.length);
    const bytes = fileBytesOf(body, scanned.size);
    assert.deepEqual(bytes, file);
    assert.equal(createHash('sha256').update(bytes).digest('hex'), scanned.sha256);
  });
});
