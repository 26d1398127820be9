import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replicaFraming } from './backend-client.ts';
import { singleFileMultipart } from './multipart.ts';

describe('singleFileMultipart', () => {
  it('frames one file part named data, byte for byte like Go mime/multipart', () => {
    const framing = singleFileMultipart({ boundary: 'b0undary', filename: '/docs/a.txt' });
    assert.equal(framing.contentType, 'multipart/form-data; boundary=b0undary');
    assert.equal(
      framing.head.toString(),
      '--b0undary\r\nContent-Disposition: form-data; name="data"; filename="/docs/a.txt"\r\n' +
        'Content-Type: application/octet-stream\r\n\r\n',
    );
    assert.equal(framing.tail.toString(), '\r\n--b0undary--\r\n');
  });

  it('parses back to the file bytes with a standard multipart parser', async () => {
    const file = Buffer.from('line 1\r\n--not-a-boundary\r\n\x00\xff bytes');
    const framing = singleFileMultipart({ filename: '/kv/7' });
    const body = Buffer.concat([framing.head, file, framing.tail]);
    assert.equal(body.length, framing.head.length + file.length + framing.tail.length);
    const form = await new Request('http://x/', {
      method: 'POST',
      headers: { 'content-type': framing.contentType },
      body,
    }).formData();
    const part = form.get('data');
    assert.ok(part instanceof File);
    assert.equal(part.type, 'application/octet-stream');
    assert.deepEqual(Buffer.from(await part.arrayBuffer()), file);
  });

  it('uses a fresh random 60-hex-digit boundary by default', () => {
    const a = singleFileMultipart();
    const b = singleFileMultipart();
    assert.match(a.contentType, /^multipart\/form-data; boundary=[0-9a-f]{60}$/);
    assert.notEqual(a.contentType, b.contentType);
    assert.match(a.head.toString(), /filename="data"/);
  });

  it('escapes the filename as Go does and quotes boundaries that need it', () => {
    const framing = singleFileMultipart({ boundary: 'a b:c', filename: 'q"\\\r\n' });
    assert.equal(framing.contentType, 'multipart/form-data; boundary="a b:c"');
    assert.match(framing.head.toString(), /filename="q\\"\\\\%0D%0A"\r\n/);
  });

  it('refuses bad boundaries and an empty filename', () => {
    assert.throws(() => singleFileMultipart({ boundary: '' }), RangeError);
    assert.throws(() => singleFileMultipart({ boundary: 'x'.repeat(71) }), RangeError);
    assert.throws(() => singleFileMultipart({ boundary: 'ends with space ' }), RangeError);
    assert.throws(() => singleFileMultipart({ boundary: 'a"b' }), RangeError);
    assert.throws(() => singleFileMultipart({ filename: '' }), RangeError);
  });
});

describe('replica framing', () => {
  it('is smaller than the stock client framing of the shortest path, so a copy never passes the 1 GiB cap', () => {
    const stock = singleFileMultipart({ filename: '/a' }); // Go's 60-character boundary, the shortest rooted path
    const replica = replicaFraming();
    assert.ok(replica.head.length + replica.tail.length < stock.head.length + stock.tail.length);
  });

  it('draws a new 16-hex-digit boundary for every upload, across refills of its random pool', () => {
    const boundaries = Array.from(
      { length: 300 },
      () => /boundary=(\S+)/.exec(replicaFraming().contentType)?.[1],
    );
    for (const boundary of boundaries) assert.match(boundary ?? '', /^[0-9a-f]{16}$/);
    assert.equal(new Set(boundaries).size, boundaries.length, 'no boundary repeats');
  });
});
