import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertChunkedOnly, UnsupportedTransferCodingError } from './transfer-coding.ts';

describe('transfer codings at the edge', () => {
  it('accepts no Transfer-Encoding, or chunked alone in any case', () => {
    assertChunkedOnly(['Host', 'x', 'Content-Length', '3']);
    assertChunkedOnly(['Transfer-Encoding', 'chunked']);
    assertChunkedOnly(['transfer-encoding', ' Chunked ']);
  });

  it('refuses other codings, a list and two header lines with 501, as a charm server does', () => {
    for (const raw of [
      ['Transfer-Encoding', 'gzip'],
      ['Transfer-Encoding', 'gzip, chunked'],
      ['Transfer-Encoding', 'qSvg8', 'Transfer-Encoding', 'chunked'],
      ['Transfer-Encoding', 'chunked', 'transfer-encoding', 'chunked'],
      ['Transfer-Encoding', ''],
    ]) {
      assert.throws(
        () => assertChunkedOnly(raw),
        (err) =>
          err instanceof UnsupportedTransferCodingError && err.statusCode === 501 && err.closeConnection,
        JSON.stringify(raw),
      );
    }
  });
});
