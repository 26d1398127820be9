import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { UploadBody } from './upload-body.ts';

/** Where requests go: one keep-alive agent per endpoint, so each path keeps its own warm connections. */
export interface HttpEndpoint {
  name: string;
  host: string;
  port: number;
  agent: Agent;
}

export function httpEndpoint(name: string, port: number, host = '127.0.0.1'): HttpEndpoint {
  // A timeout makes the agent honour the server's `Keep-Alive: timeout=` hint (Node applies it only below the
  // agent's own timeout): idle sockets are dropped a second before the gateway closes them (10 s), instead of
  // being reused just as it does (uploads after a drain longer than that failed with EPIPE).
  return { name, host, port, agent: new Agent({ keepAlive: true, maxSockets: 64, timeout: 120_000 }) };
}

/** What one request measured; `bodySentMs` is when the last body byte went to the socket (uploads only). */
export interface OperationTiming {
  latencyMs: number;
  bodySentMs?: number;
}

export interface LoadResult {
  operations: number;
  errors: number;
  firstError?: string;
  wallMs: number;
  /** Successful operations only. */
  timings: OperationTiming[];
}

const MAX_ERROR_BODY_BYTES = 4096;

/** Reads a short error body for the message, then rejects. */
function refuse(status: number | undefined, chunks: AsyncIterable<unknown>, what: string): Promise<never> {
  return (async () => {
    let text = '';
    for await (const chunk of chunks) {
      if (text.length < MAX_ERROR_BODY_BYTES) text += String(chunk);
    }
    throw new Error(`${what} answered ${status}: ${text.trim().slice(0, 200)}`);
  })();
}

/** POST /v1/fs/<path>?mode=420 with the body streamed (backpressure respected); resolves on a 200. */
export function postUpload(
  endpoint: HttpEndpoint,
  path: string,
  token: string,
  body: UploadBody,
): Promise<OperationTiming> {
  const started = performance.now();
  let bodySentMs: number | undefined;
  return new Promise((resolve, reject) => {
    const req = request({
      host: endpoint.host,
      port: endpoint.port,
      method: 'POST',
      path: `/v1/fs${path}?mode=420`,
      agent: endpoint.agent,
      headers: {
        authorization: `bearer ${token}`,
        'content-type': body.contentType,
        'content-length': String(body.totalBytes),
      },
    });
    req.once('error', reject);
    req.once('finish', () => {
      bodySentMs = performance.now() - started;
    });
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        refuse(res.statusCode, res, `POST ${endpoint.name}`).catch(reject);
        req.destroy();
        return;
      }
      res.resume();
      res.once('end', () => resolve({ latencyMs: performance.now() - started, bodySentMs }));
      res.once('error', reject);
    });
    const chunks = body.chunks()[Symbol.iterator]();
    const pump = () => {
      for (;;) {
        const next = chunks.next();
        if (next.done) {
          req.end();
          return;
        }
        if (!req.write(next.value)) {
          req.once('drain', pump);
          return;
        }
      }
    };
    pump();
  });
}

/** GET /v1/fs/<path>, the body counted (not kept); rejects unless it is a 200 with expectedBytes. */
export function getDownload(
  endpoint: HttpEndpoint,
  path: string,
  token: string,
  expectedBytes: number,
): Promise<OperationTiming> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({
      host: endpoint.host,
      port: endpoint.port,
      method: 'GET',
      path: `/v1/fs${path}`,
      agent: endpoint.agent,
      headers: { authorization: `bearer ${token}` },
    });
    req.once('error', reject);
    req.once('response', (res) => {
      if (res.statusCode !== 200) {
        refuse(res.statusCode, res, `GET ${endpoint.name}`).catch(reject);
        return;
      }
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      res.once('error', reject);
      res.once('end', () => {
        if (received === expectedBytes) resolve({ latencyMs: performance.now() - started });
        else reject(new Error(`GET ${endpoint.name}: ${received} bytes, expected ${expectedBytes}`));
      });
    });
    req.end();
  });
}

/**
 * Runs `operations` calls of `operation` with `concurrency` workers, each taking the next index when its previous
 * call settles. A failed call is counted, not retried.
 */
export async function runLoad(options: {
  concurrency: number;
  operations: number;
  operation: (index: number, worker: number) => Promise<OperationTiming>;
}): Promise<LoadResult> {
  const timings: OperationTiming[] = [];
  let errors = 0;
  let firstError: string | undefined;
  let next = 0;
  const started = performance.now();
  const worker = async (id: number) => {
    while (next < options.operations) {
      const index = next++;
      try {
        timings.push(await options.operation(index, id));
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, id) => worker(id)));
  return { operations: options.operations, errors, firstError, wallMs: performance.now() - started, timings };
}
