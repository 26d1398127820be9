import { randomBytes } from 'node:crypto';

// RFC 2046 boundary: 1-70 of these characters, not ending in a space.
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
// RFC 2045 tspecials and space: a boundary holding one must be quoted in the Content-Type.
const NEEDS_QUOTES = /[()<>@,;:\\"/[\]?= ]/;
const DEFAULT_FILENAME = 'data';

/**
 * The multipart/form-data framing the stock charm client (Go `mime/multipart`) sends for one file upload:
 * body = head + file bytes + tail, so the body can be streamed with an exact Content-Length of
 * `head.length + size + tail.length`. The server requires the part to be named `data` and to have a filename
 * (it ignores the filename's value).
 */
export function singleFileMultipart(options: { boundary?: string; filename?: string } = {}): {
  contentType: string;
  head: Buffer;
  tail: Buffer;
} {
  // Go's default: 30 random bytes in hex.
  const boundary = options.boundary ?? randomBytes(30).toString('hex');
  if (!BOUNDARY.test(boundary)) throw new RangeError(`bad multipart boundary ${JSON.stringify(boundary)}`);
  const filename = options.filename ?? DEFAULT_FILENAME;
  // With an empty filename the server reads the part as a form value, not a file, and answers 500.
  if (filename === '') throw new RangeError('the multipart filename must not be empty');
  const head =
    `--${boundary}\r\n` +
    `Content-Disposition: form-data; name="data"; filename="${escapeQuotes(filename)}"\r\n` +
    'Content-Type: application/octet-stream\r\n\r\n';
  return {
    contentType: `multipart/form-data; boundary=${NEEDS_QUOTES.test(boundary) ? `"${boundary}"` : boundary}`,
    head: Buffer.from(head, 'utf8'),
    tail: Buffer.from(`\r\n--${boundary}--\r\n`, 'utf8'),
  };
}

// Go's escaping of parameter values: `\` and `"` get a backslash, CR and LF are percent-encoded.
function escapeQuotes(value: string): string {
  return value.replace(/[\\"\r\n]/g, (char) => (char === '\r' ? '%0D' : char === '\n' ? '%0A' : `\\${char}`));
}
