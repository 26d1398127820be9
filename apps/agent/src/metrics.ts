import { Counter, Gauge, type Registry } from 'prom-client';
import type { SweepResult } from './temp-sweeper.ts';

/** The agent's own metrics (beside the process metrics every Charmed Ring process exports). */
export function createAgentMetrics(registry: Registry, backend: string) {
  const labels = { backend };
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
