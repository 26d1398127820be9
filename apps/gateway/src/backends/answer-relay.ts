import type { ServerResponse } from 'node:http';
import { forwardableHeaders, sizedHead } from './backend-http.ts';
import type { BackendAnswer } from './socket-reads.ts';

/**
 * Writes a body's slices to the client: one corked batch per socket read (one writev), pausing the backend while
 * the client's buffer is full. `payloadLimit` cuts before a slice that would pass it.
 */
function pipeBody(
  answer: BackendAnswer,
  res: ServerResponse,
  handlers: { end(sent: number): void; cut(): void; payloadLimit?: number },
): () => number {
  let sent = 0;
  const onDrain = () => answer.resume();
  res.on('drain', onDrain);
  answer.drain({
    data(payload) {
      let bytes = 0;
      for (const slice of payload) bytes += slice.length;
      if (handlers.payloadLimit !== undefined && sent + bytes > handlers.payloadLimit) {
        handlers.cut();
        return false;
      }
      sent += bytes;
      res.cork();
      let more = true;
      for (const slice of payload) more = res.write(slice);
      res.uncork();
      return more;
    },
    end: () => {
      res.off('drain', onDrain);
      handlers.end(sent);
    },
    fail: () => handlers.cut(),
  });
  return () => sent;
}

/**
 * Relays a 200 whose size the manifest knows (answer-side twin of relaySized): the client gets that
 * Content-Length, and a backend that sends more or fewer bytes has the client's connection cut before the answer
 * completes, so a wrong copy is never taken for a complete one. Resolves once the client's response is closed
 * (finished or cut), with the body bytes written to it; a client that leaves closes the backend connection.
 */
export function relayAnswerSized(answer: BackendAnswer, res: ServerResponse, size: number): Promise<number> {
  sizedHead(answer, res, size);
  return new Promise((resolve) => {
    const cut = () => {
      answer.destroy();
      res.destroy();
    };
    const sent = pipeBody(answer, res, {
      payloadLimit: size,
      end: (bytes) => (bytes === size ? res.end() : cut()),
      cut,
    });
    res.once('close', () => {
      answer.destroy(); // the client left before the end (after it, this changes nothing)
      resolve(sent());
    });
  });
}

/**
 * Relays a backend's answer as sent: status, headers (exact Content-Type, X-File-Mode, Last-Modified), then the
 * body given (read already) or its bytes as they come. Returns the body bytes relayed.
 */
export function relayAnswer(answer: BackendAnswer, res: ServerResponse, body?: Buffer): Promise<number> {
  res.writeHead(answer.statusCode, answer.statusMessage, forwardableHeaders(answer.rawHeaders));
  if (body !== undefined) {
    res.end(body);
    return Promise.resolve(body.length);
  }
  return new Promise((resolve) => {
    const sent = pipeBody(answer, res, {
      end: () => res.end(),
      cut: () => {
        answer.destroy();
        res.destroy();
      },
    });
    res.once('close', () => {
      answer.destroy();
      resolve(sent());
    });
  });
}
