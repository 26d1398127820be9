import type { Queue } from 'bullmq';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** Every metric the gateway exports, defined once. */
export function createGatewayMetrics(
  registry: Registry,
  queues: () => Queue[],
  /** The pool of file reads and owner POSTs, per backend (backends/socket-reads.ts). */
  readPool: () => Record<string, { opened: number; active: number; idle: number }> = () => ({}),
) {
  const registers = [registry];
  const metrics = {
    requests: new Counter({
      name: 'cring_http_requests_total',
      help: 'Requests answered, by route, method and status',
      labelNames: ['route', 'method', 'status'],
      registers,
    }),
    requestSeconds: new Histogram({
      name: 'cring_http_request_duration_seconds',
      help: 'Time to answer a request, by route and method',
      labelNames: ['route', 'method'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120],
      registers,
    }),
    backendRequests: new Counter({
      name: 'cring_backend_requests_total',
      help: 'Requests to backends, by backend, method and outcome (status code or "transport")',
      labelNames: ['backend', 'method', 'outcome'],
      registers,
    }),
    backendSeconds: new Histogram({
      name: 'cring_backend_request_duration_seconds',
      help: 'Time until a backend answered (response head), by backend and method',
      labelNames: ['backend', 'method'],
      buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
      registers,
    }),
    quorumFailures: new Counter({
      name: 'cring_quorum_failures_total',
      help: 'Changes refused because fewer than W backends accepted them',
      labelNames: ['operation'],
      registers,
    }),
    remainingCopies: new Counter({
      name: 'cring_remaining_copies_total',
      help: 'Copies of small acknowledged writes the gateway sent after the answer, by target (owner: one the quorum left out; s3) and outcome (recorded; failed: the job runs now; not-recorded, skipped: left to the job)',
      labelNames: ['target', 'outcome'],
      registers,
    }),
    readAheads: new Counter({
      name: 'cring_read_ahead_total',
      help: 'File reads sent to a backend before the manifest answered, by outcome (relayed; asked-again: not relayable as it was; discarded: the plan chose another backend; failed)',
      labelNames: ['outcome'],
      registers,
    }),
    bytesIn: new Counter({ name: 'cring_upload_bytes_total', help: 'Upload body bytes received', registers }),
    bytesOut: new Counter({
      name: 'cring_download_bytes_total',
      help: 'File and listing bytes relayed to clients',
      registers,
    }),
    spoolBytes: new Gauge({
      name: 'cring_spool_bytes',
      help: 'Upload bytes currently held in the spool (memory and disk)',
      registers,
    }),
    redisConnected: new Gauge({
      name: 'cring_redis_connected',
      help: '1 while the gateway has a working connection to the Redis primary',
      registers,
    }),
    redisReconnects: new Counter({
      name: 'cring_redis_reconnects_total',
      help: 'Times the Redis connection came back after a loss (a Redis restart or a Sentinel failover)',
      registers,
    }),
    limitTrips: new Counter({
      name: 'cring_limit_trips_total',
      help: 'Requests and connections cut or refused by a limit (docs/security.md), by limit',
      labelNames: ['limit'],
      registers,
    }),
    refusalsAwaitingRecord: new Gauge({
      name: 'cring_refusals_awaiting_record',
      help: 'Refused writes whose intent Redis lost, not recorded again yet (retried while Redis does not answer)',
      registers,
    }),
    backendUp: new Gauge({
      name: 'cring_backend_up',
      help: '1 when the backend passes its health probe, by protocol (http, ssh)',
      labelNames: ['backend', 'protocol'],
      registers,
    }),
  };
  new Gauge({
    name: 'cring_backend_read_connections',
    help: 'Connections of the pool of file reads and owner POSTs per backend: in use (active) and kept alive idle (idle)',
    labelNames: ['backend', 'state'],
    registers,
    collect() {
      this.reset();
      for (const [backend, { active, idle }] of Object.entries(readPool())) {
        this.set({ backend, state: 'active' }, active);
        this.set({ backend, state: 'idle' }, idle);
      }
    },
  });
  new Counter({
    name: 'cring_backend_read_connections_opened_total',
    help: 'Connections the pool of file reads and owner POSTs opened per backend (a steady count means they are reused)',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset();
      for (const [backend, { opened }] of Object.entries(readPool())) this.inc({ backend }, opened);
    },
  });
  new Gauge({
    name: 'cring_queue_jobs',
    help: 'Jobs per queue and state (read from Redis when scraped)',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      this.reset();
      for (const queue of queues()) {
        const counts = await queue
          .getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed')
          .catch(() => undefined);
        for (const [state, count] of Object.entries(counts ?? {}))
          this.set({ queue: queue.name, state }, count);
      }
    },
  });
  new Gauge({
    name: 'cring_queue_oldest_job_age_seconds',
    help: 'Age of the oldest job waiting or waiting to retry, per queue (0 when none; read from Redis when scraped)',
    labelNames: ['queue'],
    registers,
    async collect() {
      this.reset();
      for (const queue of queues()) {
        const oldest = await Promise.all([
          queue.getJobs(['waiting'], 0, 0, true),
          queue.getJobs(['delayed'], 0, 0, true),
        ]).catch(() => undefined);
        if (!oldest) continue;
        const stamps = oldest.flat().map((job) => job.timestamp);
        this.set(
          { queue: queue.name },
          stamps.length ? Math.max(0, (Date.now() - Math.min(...stamps)) / 1000) : 0,
        );
      }
    },
  });
  return metrics;
}

export type GatewayMetrics = ReturnType<typeof createGatewayMetrics>;
