import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import type { Backend } from '@cring/charm';
import { callBackendExpectOk } from '../http/backend-calls.ts';
import type { GatewayServices } from '../http/services.ts';
import type { ChunkForwarder } from '../spool/upload-spool.ts';

export interface StreamedOutcome {
  backend: Backend;
  ok: boolean;
  reason?: string;
  error?: unknown;
}

/**
 * Uploads to backends while the client's body is still arriving, instead of after it was spooled: each chunk the
 * spool has validated is forwarded to every upload still running (waiting for the slowest: backpressure). A
 * backend that fails drops out at once; the caller completes the quorum from the spool afterwards. A cancelled
 * upload never completes its body, and a charm server parses the whole form before it writes, so a malformed or
 * oversize upload changes nothing on any backend.
 */
export function startStreamedUploads(
  services: GatewayServices,
  backends: readonly Backend[],
  request: { pathAndQuery: string; headers: string[] },
): { forwarder: ChunkForwarder; outcomes: () => Promise<StreamedOutcome[]> } {
  const uploads = backends.map((backend) => {
    const body = new PassThrough({ highWaterMark: 256 * 1024 });
    const cancel = new AbortController();
    const upload = {
      backend,
      body,
      cancel,
      failed: false,
      outcome: Promise.resolve<StreamedOutcome>({ backend, ok: true }),
    };
    upload.outcome = callBackendExpectOk(services, backend, {
      method: 'POST',
      ...request,
      body,
      signal: cancel.signal,
    }).then(
      (): StreamedOutcome => ({ backend, ok: true }),
      (err: Error): StreamedOutcome => {
        upload.failed = true;
        cancel.abort();
        body.destroy();
        return { backend, ok: false, reason: err.message, error: err };
      },
    );
    return upload;
  });
  const running = () => uploads.filter((u) => !u.failed);
  return {
    forwarder: {
      async write(chunk) {
        await Promise.all(
          running().map((u) =>
            u.body.write(chunk) ? undefined : Promise.race([once(u.body, 'drain'), u.outcome]),
          ),
        );
      },
      end() {
        for (const u of running()) u.body.end();
      },
      cancel() {
        for (const u of uploads) {
          u.failed = true;
          u.cancel.abort();
          u.body.destroy();
        }
      },
    },
    outcomes: () => Promise.all(uploads.map((u) => u.outcome)),
  };
}
