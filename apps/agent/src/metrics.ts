import type { DiskSpace } from '@cring/agent-protocol';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { SweepResult } from './temp-sweeper.ts';

/** The agent's own metrics (beside the process metrics every Charmed Ring process exports). */
export function createAgentMetrics(registry: Registry, backend: string, diskSpace: () => Promise<DiskSpace>) {
  const labels = { backend };
  // Read at every scrape: the free space is never older than the scrape itself.
  const disk = {
    free: new Gauge({
      name: 'cring_backend_free_bytes',
      help: "Bytes free on the backend's data volume",
      labelNames: ['backend'],
      registers: [registry],
    }),
    size: new Gauge({
      name: 'cring_backend_size_bytes',
      help: "Size of the backend's data volume",
      labelNames: ['backend'],
      registers: [registry],
    }),
    reserve: new Gauge({
      name: 'cring_backend_free_reserve_bytes',
      help: 'Free space the backend keeps: under it, it takes no new writes or repairs',
      labelNames: ['backend'],
      registers: [registry],
    }),
    under: new Gauge({
      name: 'cring_backend_under_reserve',
      help: '1 while the backend is under its free-space reserve (writes go to other owners)',
      labelNames: ['backend'],
      registers: [registry],
      async collect() {
        const space = await diskSpace();
        disk.free.set(labels, space.freeBytes);
        disk.size.set(labels, space.sizeBytes);
        disk.reserve.set(labels, space.reserveBytes);
        this.set(labels, space.underReserve ? 1 : 0);
      },
    }),
  };
  const tempFilesSwept = new Counter({
    name: 'cring_agent_temp_files_swept_total',
    help: "Leaked upload temp files (multipart-*) removed from the charm server's TMPDIR",
    labelNames: ['backend'],
    registers: [registry],
  });
  const tempBytesSwept = new Counter({
    name: 'cring_agent_temp_bytes_swept_total',
    help: "Bytes of leaked upload temp files removed from the charm server's TMPDIR",
    labelNames: ['backend'],
    registers: [registry],
  });
  const tempBytes = new Gauge({
    name: 'cring_agent_temp_bytes',
    help: 'Bytes of upload temp files still in the TMPDIR after the last sweep (too young, or still open)',
    labelNames: ['backend'],
    registers: [registry],
  });
  const tempSweepErrors = new Counter({
    name: 'cring_agent_temp_sweep_errors_total',
    help: 'Temp sweeps that failed (the TMPDIR unreadable, a file not removable)',
    labelNames: ['backend'],
    registers: [registry],
  });
  for (const counter of [tempFilesSwept, tempBytesSwept, tempSweepErrors]) counter.inc(labels, 0);
  return {
    swept(result: SweepResult) {
      tempFilesSwept.inc(labels, result.files);
      tempBytesSwept.inc(labels, result.bytes);
      tempBytes.set(labels, result.remainingBytes);
    },
    sweepFailed: () => tempSweepErrors.inc(labels),
  };
}
