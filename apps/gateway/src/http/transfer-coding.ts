import { GatewayError } from '../errors.ts';

/**
 * A request whose Transfer-Encoding is anything but one `chunked`: Node's parser takes "gzip, chunked" (and two
 * header lines) as chunked and hands over bytes still in a coding nobody here decodes. A charm server (Go) answers
 * such a request 501 and closes; so does the gateway, before the route reads anything.
 */
export class UnsupportedTransferCodingError extends GatewayError {
  constructor(codings: string) {
    super(
      501,
      'UNSUPPORTED_TRANSFER_ENCODING',
      `Transfer-Encoding "${codings.slice(0, 100)}" is not supported: send the body with Content-Length, or with Transfer-Encoding: chunked alone`,
      { closeConnection: true },
    );
  }
}

/** Throws UnsupportedTransferCodingError unless the raw headers carry no Transfer-Encoding or exactly `chunked`. */
export function assertChunkedOnly(rawHeaders: readonly string[]): void {
  const values: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]?.toLowerCase() === 'transfer-encoding') values.push(rawHeaders[i + 1] ?? '');
  }
  if (values.length === 0) return;
  if (values.length === 1 && values[0]?.trim().toLowerCase() === 'chunked') return;
  throw new UnsupportedTransferCodingError(values.join(', '));
}
