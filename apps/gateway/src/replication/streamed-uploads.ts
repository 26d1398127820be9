import type { Backend } from '@cring/charm';
import type { StreamedRequest } from '../backends/socket-reads.ts';
import { postWholeToBackend, streamToBackend } from '../http/backend-calls.ts';
import type { GatewayServices } from '../http/services.ts';
import type { ChunkForwarder } from '../spool/upload-spool.ts';

export interface StreamedOutcome {
  backend: Backend;
  ok: boolean;
  reason?: string;
  error?: unknown;
}

/**
 * Bodies up to this size go to each backend as one buffer, in one write with the request head, once complete; a
 * larger body's uploads start when this much has arrived and stream the rest.
 */
export const ONE_BUFFER_BYTES = 64 * 1024;

interface Upload {
  backend: Backend;
  cancel: AbortController;
  failed: boolean;
  /** The streamed body, once the upload streams. */
  body?: StreamedRequest;
  /** Set once the request is sent. */
  outcome?: Promise<StreamedOutcome>;
}

/**
 * Uploads to backends while the client's body is still arriving, instead of after it was spooled: each chunk the
 * spool has validated is forwarded to every upload still running (waiting for the slowest: backpressure). A
 * backend that fails drops out at once; the caller completes the quorum from the spool afterwards. A cancelled
 * upload never completes its body, and a charm server parses the whole form before it writes, so a malformed or
 * oversize upload changes nothing on any backend. Small bodies are held until complete and sent as one buffer.
 */
export function startStreamedUploads(
  services: GatewayServices,
  backends: readonly Backend[],
  request: { pathAndQuery: string; headers: string[] },
): { forwarder: ChunkForwarder; outcomes: () => Promise<StreamedOutcome[]> } {
  const uploads: Upload[] = backends.map((backend) => ({
    backend,
    cancel: new AbortController(),
    failed: false,
  }));
  let held: Buffer[] = [];
  let heldBytes = 0;
  let streaming = false;
  // A whole body leaves in one write; a streamed one (body undefined) gets its bytes through upload.body.
  const send = (upload: Upload, body?: Buffer) => {
    const signal = upload.cancel.signal;
    let sent: Promise<unknown>;
    if (body) sent = postWholeToBackend(services, upload.backend, { ...request, body, signal });
    else {
      try {
        const streamed = streamToBackend(services, upload.backend, { ...request, signal });
        upload.body = streamed.body;
        sent = streamed.done;
      } catch (err) {
        sent = Promise.reject(err);
      }
    }
    upload.outcome = sent.then(
      (): StreamedOutcome => ({ backend: upload.backend, ok: true }),
      (err: Error): StreamedOutcome => {
        upload.failed = true;
        upload.cancel.abort(); // the connection is closed: the backend never sees the body complete
        return { backend: upload.backend, ok: false, reason: err.message, error: err };
      },
    );
  };
  const running = () => uploads.filter((u) => !u.failed);
  const forward = (chunk: Buffer) =>
    Promise.all(running().map((u) => (u.body?.write(chunk) !== false ? undefined : u.body.drained())));
  return {
    forwarder: {
      async write(chunk) {
        if (!streaming && heldBytes + chunk.length <= ONE_BUFFER_BYTES) {
          held.push(chunk);
          heldBytes += chunk.length;
          return;
        }
        if (!streaming) {
          streaming = true;
          for (const u of running()) send(u);
          const first = Buffer.concat(held);
          held = [];
          if (first.length > 0) await forward(first);
        }
        await forward(chunk);
      },
      end() {
        if (streaming) {
          for (const u of running()) u.body?.end();
          return;
        }
        const body = Buffer.concat(held);
        held = [];
        for (const u of running()) send(u, body);
      },
      cancel() {
        held = [];
        for (const u of uploads) {
          u.failed = true;
          u.cancel.abort();
        }
      },
    },
    outcomes: () =>
      Promise.all(
        uploads.map(
          (u) =>
            u.outcome ??
            Promise.resolve<StreamedOutcome>({ backend: u.backend, ok: false, reason: 'never sent' }),
        ),
      ),
  };
}
