import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { createUploadBody, fileSha256, framingBytes } from './upload-body.ts';

const concat = (chunks: Iterable<Buffer>) => Buffer.concat([...chunks]);

describe('createUploadBody', () => {
  const block = randomBytes(1000);

  it('frames the file like the stock client and says its exact length', () => {
    for (const size of [0, 1, 999, 1000, 4096, 3 * 1024 * 1024 + 7]) {
      const body = createUploadBody(size, block);
      const bytes = concat(body.chunks());
      assert.equal(bytes.length, body.totalBytes, `size ${size}`);
      assert.equal(body.totalBytes, size + framingBytes());
      assert.match(body.contentType, /^multipart\/form-data; boundary=[0-9a-f]{60}$/);
      const boundary = body.contentType.split('=')[1];
      assert.ok(bytes.subarray(0, 64).toString('latin1').startsWith(`--${boundary}\r\n`));
      assert.ok(bytes.toString('latin1').endsWith(`\r\n--${boundary}--\r\n`));
      assert.match(bytes.toString('latin1'), /name="data"; filename="\/upload\.bin"/);
    }
  });

  it('replays the same bytes, whose file part hashes to fileSha256', () => {
    const size = 2 * 1024 * 1024 + 123; // above the single-buffer size: streamed in chunks
    const body = createUploadBody(size, block);
    const first = concat(body.chunks());
    assert.deepEqual(concat(body.chunks()), first);
    const head = first.indexOf('\r\n\r\n') + 4;
    const file = first.subarray(head, head + size);
    assert.equal(createHash('sha256').update(file).digest('hex'), fileSha256(size, block));
    assert.deepEqual(file.subarray(0, block.length), block);
    assert.deepEqual(file.subarray(block.length, 2 * block.length), block);
  });

  it('streams large bodies as views of the block, not copies', () => {
    const big = randomBytes(1024 * 1024);
    const body = createUploadBody(64 * 1024 * 1024, big);
    let chunks = 0;
    for (const chunk of body.chunks()) {
      chunks++;
      assert.ok(chunk.length <= 256 * 1024 || chunks === 1);
    }
    assert.ok(chunks > 256);
  });
});
