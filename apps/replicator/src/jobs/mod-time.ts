import {
  type AgentClient,
  AgentRefusedError,
  MAX_MOD_TIMES_PER_CALL,
  type ModTimeRequest,
} from '@cring/agent-protocol';
import type { JobContext } from './job-context.ts';

/**
 * Gives a copy the acknowledged write's modification time through the agent beside its backend, so a listing
 * shows the same time whichever backend answers it (the server stamps a copy with the time it received it).
 * `lastModified` is the source's own Last-Modified (second precision); without one, the manifest's commit time.
 * Best effort: the bytes are what matters, so a failure is logged and the copy stands (the path lock is still
 * held, and the agent only touches a file of the copy's size).
 */
export async function carryModTime(
  ctx: JobContext,
  target: string,
  copy: { charmId: string; path: string; size: number; lastModified?: string; atMs: number },
): Promise<void> {
  if (!ctx.modTimes) return;
  const fromSource = copy.lastModified ? Date.parse(copy.lastModified) : Number.NaN;
  const mtimeMs = Number.isFinite(fromSource) ? fromSource : copy.atMs;
  try {
    await ctx.modTimes.send(target, { charmId: copy.charmId, path: copy.path, mtimeMs, size: copy.size });
  } catch (err) {
    ctx.logger.warn(
      { backend: target, charmId: copy.charmId, err: (err as Error).message },
      "copy kept the time it was made: its agent did not set the original's",
    );
  }
}

export type ModTimeSender = ReturnType<typeof createModTimeSender>;

/**
 * Sends copies' modification times to their backends' agents, several files per call: one call per agent at a
 * time, and the files that arrive while it is in flight go together in the next (at most MAX_MOD_TIMES_PER_CALL),
 * so a busy queue pays one agent call (a token, a request) for many jobs. Each caller hears its own file's result.
 */
export function createModTimeSender(agentFor: (backend: string) => AgentClient | undefined) {
  interface Waiting {
    request: ModTimeRequest;
    resolve: () => void;
    reject: (err: unknown) => void;
  }
  const lanes = new Map<string, { waiting: Waiting[]; busy: boolean }>();

  async function drain(backend: string, agent: AgentClient, lane: { waiting: Waiting[]; busy: boolean }) {
    lane.busy = true;
    while (lane.waiting.length > 0) {
      const batch = lane.waiting.splice(0, MAX_MOD_TIMES_PER_CALL);
      try {
        const results = await agent.setModTimes(batch.map((w) => w.request));
        batch.forEach((waiting, i) => {
          const result = results[i];
          if (result && 'set' in result) waiting.resolve();
          else waiting.reject(new AgentRefusedError(backend, 409, result?.code ?? '', result?.message ?? ''));
        });
      } catch (err) {
        for (const waiting of batch) waiting.reject(err);
      }
    }
    lane.busy = false;
  }

  return {
    /** Resolves once the agent set the time; rejects with its refusal or failure. No agent: nothing to do. */
    send(backend: string, request: ModTimeRequest): Promise<void> {
      const agent = agentFor(backend);
      if (!agent) return Promise.resolve();
      let lane = lanes.get(backend);
      if (!lane) {
        lane = { waiting: [], busy: false };
        lanes.set(backend, lane);
      }
      const sent = new Promise<void>((resolve, reject) => lane.waiting.push({ request, resolve, reject }));
      if (!lane.busy) void drain(backend, agent, lane);
      return sent;
    },
  };
}
