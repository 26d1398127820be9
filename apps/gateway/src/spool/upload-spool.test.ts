import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { after, describe, it } from 'node:test';
import { MultipartScanner } from './multipart-scanner.ts';
import { SpoolBudget } from './spool-budget.ts';
import { spoolUpload } from './upload-spool.ts';

const dir = mkdtempSync(join(tmpdir(), 'cring-spool-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const BOUNDARY = 'a1b2c3d4e5f6';
const contentType = `multipart/form-data; boundary=${BOUNDARY}`;

/** What the stock charm client sends (Go mime/multipart CreateFormFile). */
function charmUpload(
  data: Buffer,
  options: { name?: string; filename?: boolean; tail?: string } = {},
): Buffer {
  const disposition = `form-data; name="${options.name ?? 'data'}"${options.filename === false ? '' : '; filename="/docs/a.txt"'}`;
  return Buffer.concat([
    Buffer.from(
      `--${BOUNDARY}\r\nContent-Disposition: ${disposition}\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    data,
    Buffer.from(options.tail ?? `\r\n--${BOUNDARY}--\r\n`),
  ]);
}

/** Splits bytes into random-sized chunks, so delimiters straddle chunk edges. */
function chunked(bytes: Buffer, maxChunk: number): Readable {
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const size = 1 + Math.floor(Math.random() * maxChunk);
    chunks.push(bytes.subarray(i, i + size));
    i += size;
  }
  return Readable.from(chunks);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const options = { dir, memoryBytes: 64 * 1024, maxUploadBytes: 1024 * 1024 };

describe('spoolUpload', () => {
  it('hashes exactly the file bytes and replays the body byte for byte, whatever the chunking', async () => {
    for (const size of [0, 1, 17, 5000, 200_000]) {
      for (const maxChunk of [1, 7, 4096]) {
        if (maxChunk === 1 && size > 5000) continue;
        // Data that contains near-miss delimiters must not end the part early.
        const data = Buffer.concat([randomBytes(size), Buffer.from(`\r\n--${BOUNDARY.slice(0, 5)}x`)]);
        const body = charmUpload(data);
        const spooled = await spoolUpload(
          chunked(body, maxChunk),
          { contentType, contentLength: String(body.length) },
          options,
        );
        assert.equal(spooled.totalBytes, body.length);
        assert.deepEqual(spooled.file, { size: data.length, sha256: sha256(data) });
        assert.ok(spooled.replay, 'a body spooled without a forwarder is kept');
        const replayed = spooled.replay();
        const bytes = Buffer.isBuffer(replayed) ? replayed : await buffer(replayed);
        assert.ok(bytes.equals(body));
        await spooled.discard();
      }
    }
  });

  it('keeps small bodies in memory and large ones in a temp file that discard removes', async () => {
    const small = await spoolUpload(
      Readable.from([charmUpload(randomBytes(100))]),
      { contentType, contentLength: undefined },
      options,
    );
    assert.ok(Buffer.isBuffer(small.replay?.()));
    const large = await spoolUpload(
      chunked(charmUpload(randomBytes(300_000)), 65536),
      { contentType, contentLength: undefined },
      options,
    );
    assert.equal(readdirSync(dir).length, 1);
    assert.ok(large.replay && !Buffer.isBuffer(large.replay()));
    await large.discard();
    await large.discard();
    assert.equal(readdirSync(dir).length, 0);
  });

  it('refuses oversize bodies with 413, declared or not, and leaves no temp file', async () => {
    const big = charmUpload(randomBytes(1024 * 1024 + 10));
    await assert.rejects(
      spoolUpload(Readable.from([big]), { contentType, contentLength: String(big.length) }, options),
      (err: Error & { statusCode?: number }) => err.statusCode === 413,
    );
    await assert.rejects(
      spoolUpload(chunked(big, 65536), { contentType, contentLength: undefined }, options),
      (err: Error & { statusCode?: number }) => err.statusCode === 413,
    );
    assert.equal(readdirSync(dir).length, 0);
  });

  it('refuses malformed multipart with a 400 that says what is wrong', async () => {
    const cases: [Buffer, string | undefined, RegExp][] = [
      [charmUpload(Buffer.from('x')), 'application/json', /multipart\/form-data with a boundary/],
      [charmUpload(Buffer.from('x'), { name: 'file' }), contentType, /not named "data"/],
      [charmUpload(Buffer.from('x'), { filename: false }), contentType, /no filename/],
      [charmUpload(Buffer.from('x'), { tail: '' }), contentType, /ends before the closing boundary/],
      [
        charmUpload(Buffer.from('x'), { tail: `\r\n--${BOUNDARY}\r\nmore` }),
        contentType,
        /more than one part/,
      ],
      [Buffer.from('garbage'), contentType, /does not start with the boundary/],
    ];
    for (const [body, type, message] of cases) {
      await assert.rejects(
        spoolUpload(Readable.from([body]), { contentType: type, contentLength: undefined }, options),
        (err: Error & { statusCode?: number }) => err.statusCode === 400 && message.test(err.message),
      );
    }
    const body = charmUpload(Buffer.from('x'));
    await assert.rejects(
      spoolUpload(Readable.from([body]), { contentType, contentLength: String(body.length + 5) }, options),
      /Content-Length said/,
    );
    assert.equal(existsSync(dir) && readdirSync(dir).length, 0);
  });

  it('finds the closing delimiter wherever two chunks split it', () => {
    const data = randomBytes(300);
    const body = charmUpload(data);
    const tailStart = body.length - `\r\n--${BOUNDARY}--\r\n`.length;
    for (let cut = tailStart - 30; cut <= body.length; cut++) {
      const scanner = new MultipartScanner(BOUNDARY);
      for (const [from, to] of [
        [0, cut - 3],
        [cut - 3, cut],
        [cut, body.length],
      ] as const) {
        scanner.write(body.subarray(Math.max(0, from), Math.max(0, to)));
      }
      assert.deepEqual(scanner.finish(), { size: data.length, sha256: sha256(data) }, `cut at ${cut}`);
    }
  });

  it('scanner accepts a quoted boundary and an epilogue', () => {
    const scanner = new MultipartScanner(BOUNDARY);
    scanner.write(charmUpload(Buffer.from('abc'), { tail: `\r\n--${BOUNDARY}--\r\nepilogue` }));
    assert.deepEqual(scanner.finish(), { size: 3, sha256: sha256(Buffer.from('abc')) });
  });
});

describe('spoolUpload limits', () => {
  it('fails a body that stops arriving with 408 (the client stalled) and gives its budget back', async () => {
    const budget = new SpoolBudget({ totalBytes: 1024 * 1024, waitMs: 100 });
    const body = charmUpload(randomBytes(10_000));
    const client = new PassThrough();
    client.write(body.subarray(0, 5000)); // then nothing more
    let cancelled = false;
    await assert.rejects(
      spoolUpload(
        client,
        { contentType, contentLength: String(body.length) },
        { ...options, budget, stallTimeoutMs: 200 },
        { write: async () => {}, end: () => {}, cancel: () => (cancelled = true) },
      ),
      { statusCode: 408, code: 'UPLOAD_STALLED', message: /no data for 200 ms \(after 5000 bytes\)/ },
    );
    assert.ok(cancelled, 'the uploads to backends were cancelled, not left to time out');
    assert.equal(budget.used, 0);
  });

  it('holds the declared length of the budget while spooling and releases it on discard', async () => {
    const budget = new SpoolBudget({ totalBytes: 1024 * 1024, waitMs: 100 });
    const body = charmUpload(randomBytes(200_000));
    const spooled = await spoolUpload(
      Readable.from([body]),
      { contentType, contentLength: String(body.length) },
      { ...options, budget },
    );
    assert.equal(budget.used, body.length);
    await spooled.discard();
    await spooled.discard();
    assert.equal(budget.used, 0, 'released once, even when discarded twice');
  });

  it('reserves a chunked body as it arrives and refuses it with 503 once the budget stays spent', async () => {
    const budget = new SpoolBudget({ totalBytes: 150_000, waitMs: 50 });
    await budget.reserve(100_000); // another upload in flight
    const body = charmUpload(randomBytes(200_000));
    await assert.rejects(
      spoolUpload(
        chunked(body, 16 * 1024),
        { contentType, contentLength: undefined },
        { ...options, budget },
      ),
      { statusCode: 503, code: 'SPOOL_FULL' },
    );
    assert.equal(budget.used, 100_000, 'only the other upload still holds budget');
  });
});

describe('multipart parts the stock client never sends', () => {
  it('refuses a part with a Content-Transfer-Encoding: the server could store other bytes than the hashed ones', () => {
    for (const encoding of ['quoted-printable', 'base64', 'binary']) {
      const scanner = new MultipartScanner(BOUNDARY);
      assert.throws(
        () =>
          scanner.write(
            Buffer.from(
              `--${BOUNDARY}\r\nContent-Disposition: form-data; name="data"; filename="a"\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\nabc=3D\r\n--${BOUNDARY}--\r\n`,
            ),
          ),
        { statusCode: 400, message: /Content-Transfer-Encoding/ },
        encoding,
      );
    }
  });
});

describe('forwarding while the body arrives', () => {
  it('holds back the closing boundary until the whole body is here, so no backend can finish early', async () => {
    const body = charmUpload(randomBytes(100_000));
    const client = new PassThrough();
    const forwarded: Buffer[] = [];
    let ended = false;
    const spooling = spoolUpload(client, { contentType, contentLength: String(body.length) }, options, {
      write: async (chunk) => void forwarded.push(Buffer.from(chunk)),
      end: () => (ended = true),
      cancel: () => {},
    });
    client.write(body); // every byte, but the stream has not ended: the client could still be lying
    for (let i = 0; i < 20 && Buffer.concat(forwarded).length === 0; i++)
      await new Promise((resolve) => setImmediate(resolve));
    const early = Buffer.concat(forwarded);
    assert.ok(early.length > 0, 'the body is forwarded as it arrives');
    assert.equal(early.includes(Buffer.from(`--${BOUNDARY}--`)), false, 'but not its closing boundary');
    assert.equal(ended, false);
    client.end();
    await spooling;
    assert.deepEqual(Buffer.concat(forwarded), body, 'all of it once the body is complete');
    assert.equal(ended, true);
  });

  it('keeps no copy of a large forwarded body (no temp file, nothing to replay), and a small one in memory', async () => {
    const ownDir = mkdtempSync(join(dir, 'forwarded-'));
    const forwardedOnly = { ...options, dir: ownDir, forwardedOnly: true };
    const forwarding = () => {
      const forwarded: Buffer[] = [];
      return {
        forwarded,
        forwarder: {
          write: async (chunk: Buffer) => void forwarded.push(Buffer.from(chunk)),
          end: () => {},
          cancel: () => {},
        },
      };
    };
    const large = charmUpload(randomBytes(300_000));
    const into = forwarding();
    const spooled = await spoolUpload(
      chunked(large, 65536),
      { contentType, contentLength: String(large.length) },
      forwardedOnly,
      into.forwarder,
    );
    assert.deepEqual(readdirSync(ownDir), [], 'no temp file');
    assert.equal(spooled.replay, undefined, 'nothing to replay: a stand-in copies from an owner');
    assert.deepEqual(Buffer.concat(into.forwarded), large, 'every byte went to the forwarder');
    assert.equal(spooled.file.size, 300_000);
    await spooled.discard();

    const small = charmUpload(randomBytes(1000));
    const smallSpooled = await spoolUpload(
      Readable.from([small]),
      { contentType, contentLength: String(small.length) },
      forwardedOnly,
      forwarding().forwarder,
    );
    assert.deepEqual(smallSpooled.replay?.(), small, 'a body within memoryBytes stays replayable');
  });

  it('with a declared length, forwards each chunk before the held-back tail whole, in one write', async () => {
    // Five 64 KiB chunks and a 4 KiB one, in which the held-back tail starts.
    const frame = charmUpload(Buffer.alloc(0)).length;
    const body = charmUpload(randomBytes(5 * 65536 + 4096 - frame));
    const chunks: Buffer[] = [];
    for (let i = 0; i < body.length; i += 65536) chunks.push(body.subarray(i, i + 65536));
    const writes: Buffer[] = [];
    await spoolUpload(
      Readable.from(chunks),
      { contentType, contentLength: String(body.length) },
      { ...options, forwardedOnly: true },
      { write: async (chunk) => void writes.push(Buffer.from(chunk)), end: () => {}, cancel: () => {} },
    );
    assert.deepEqual(Buffer.concat(writes), body);
    // Every chunk but the last goes as it came; the last is cut where the held-back tail starts.
    assert.deepEqual(
      writes.slice(0, chunks.length - 1).map((w) => w.length),
      chunks.slice(0, -1).map((c) => c.length),
    );
    assert.equal(writes.length, chunks.length + 1, 'the last chunk in two: up to the tail, then the tail');
  });

  it("takes the stock client's doubled closing line, and refuses more data after the closing boundary", async () => {
    const doubled = charmUpload(Buffer.from('x'), { tail: `\r\n--${BOUNDARY}--\r\n\r\n--${BOUNDARY}--\r\n` });
    const spooled = await spoolUpload(
      Readable.from([doubled]),
      { contentType, contentLength: String(doubled.length) },
      options,
    );
    assert.equal(spooled.file.size, 1);
    const body = charmUpload(Buffer.from('x'), { tail: `\r\n--${BOUNDARY}--\r\n${'epilogue '.repeat(20)}` });
    await assert.rejects(
      spoolUpload(Readable.from([body]), { contentType, contentLength: String(body.length) }, options),
      { statusCode: 400, message: /data after the closing boundary/ },
    );
  });
});
