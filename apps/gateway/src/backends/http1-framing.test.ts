import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type AnswerHead, bodyDecoder, FramingError, headEnd, parseHead } from './http1-framing.ts';

const head = (text: string): AnswerHead => {
  const bytes = Buffer.from(text, 'latin1');
  return parseHead(bytes.subarray(0, headEnd(bytes)));
};

/** Feeds `wire` to a decoder in pieces of `step` bytes; the payload joined, and the bytes after the end. */
function decode(answer: AnswerHead, wire: Buffer, step: number): { body: Buffer; rest?: Buffer } {
  const decoder = bodyDecoder(answer, false);
  assert.ok(decoder);
  const payload: Buffer[] = [];
  let rest: Buffer | undefined;
  for (let at = 0; at < wire.length && rest === undefined; at += step) {
    const out = decoder.next(wire.subarray(at, at + step));
    payload.push(...out.payload);
    if (out.rest !== undefined) rest = Buffer.concat([out.rest, wire.subarray(at + step)]);
  }
  return { body: Buffer.concat(payload), rest };
}

const CHUNKED = head('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-File-Mode: 420\r\n\r\n');

describe('http1 framing', () => {
  it('parses the head: status, raw headers as sent, lower-cased lookups, keep-alive', () => {
    const parsed = head(
      'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nX-File-Mode: 420\r\nx-file-mode: 421\r\n\r\nbody',
    );
    assert.equal(parsed.statusCode, 404);
    assert.equal(parsed.statusMessage, 'Not Found');
    assert.deepEqual(parsed.rawHeaders, [
      'Content-Type',
      'application/json',
      'X-File-Mode',
      '420',
      'x-file-mode',
      '421',
    ]);
    assert.equal(parsed.headers['content-type'], 'application/json');
    assert.equal(parsed.headers['x-file-mode'], '420, 421');
    assert.equal(parsed.keepAlive, true);
    assert.equal(head('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n').keepAlive, false);
    assert.equal(head('HTTP/1.0 200 OK\r\n\r\n').keepAlive, false);
  });

  it('finds the head end across pieces, and refuses heads that lie', () => {
    const bytes = Buffer.from('HTTP/1.1 200 OK\r\nA: b\r\n\r\nrest');
    assert.equal(headEnd(bytes.subarray(0, 24)), -1);
    assert.equal(headEnd(bytes, 22), 25);
    for (const bad of [
      'HTTP/2 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nno colon here\r\n\r\n',
      'HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
    ]) {
      assert.throws(() => head(bad), FramingError, bad);
    }
    assert.throws(() => headEnd(Buffer.alloc(70 * 1024, 'a')), FramingError);
  });

  it('walks chunked bodies split at any byte, with extensions and trailers, as slices of the input', () => {
    const payload = Buffer.from('hello chunked world, twice over');
    const wire = Buffer.from(
      `5\r\nhello\r\n8;ext=1\r\n chunked\r\n12\r\n${payload.subarray(13).toString()}\r\n0\r\nTrailer: x\r\n\r\nNEXT`,
    );
    for (let step = 1; step <= wire.length; step++) {
      const { body, rest } = decode(CHUNKED, wire, step);
      assert.equal(body.toString(), payload.toString(), `step ${step}`);
      assert.equal(rest?.toString(), 'NEXT', `step ${step}`);
    }
    const input = Buffer.from('4\r\nabcd\r\n');
    const decoder = bodyDecoder(CHUNKED, false);
    const [slice] = decoder?.next(input).payload ?? [];
    assert.equal(slice?.buffer, input.buffer, 'no copy: the payload is a view of the socket buffer');
  });

  it('refuses malformed chunk framing', () => {
    for (const bad of ['x\r\n', '5\r\nhelloXY', '5\nhello', `${'f'.repeat(13)}\r\n`, '0\r\nno trailer\r\n']) {
      assert.throws(() => decode(CHUNKED, Buffer.from(bad), 64), FramingError, JSON.stringify(bad));
    }
    assert.throws(
      () => bodyDecoder(head('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n'), false),
      FramingError,
    );
    assert.throws(
      () => bodyDecoder(head('HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n'), false),
      FramingError,
    );
  });

  it('takes exactly Content-Length bytes, none for HEAD, 204 and 304, and until close without either', () => {
    const sized = head('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n');
    const { body, rest } = decode(sized, Buffer.from('helloGET'), 3);
    assert.equal(body.toString(), 'hello');
    assert.equal(rest?.toString(), 'GET');
    assert.equal(bodyDecoder(sized, true), undefined, 'HEAD: the length describes the GET');
    assert.equal(
      bodyDecoder(head('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n'), false),
      undefined,
    );
    const untilClose = bodyDecoder(head('HTTP/1.1 200 OK\r\n\r\n'), false);
    assert.equal(untilClose?.next(Buffer.from('abc')).rest, undefined);
    assert.equal(untilClose?.closedCompletes(), true);
    assert.equal(bodyDecoder(sized, false)?.closedCompletes(), false);
  });
});
