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
  const agent = ctx.agentFor?.(target);
  if (!agent) return;
  const fromSource = copy.lastModified ? Date.parse(copy.lastModified) : Number.NaN;
  const mtimeMs = Number.isFinite(fromSource) ? fromSource : copy.atMs;
  try {
    await agent.setModTime({ charmId: copy.charmId, path: copy.path, mtimeMs, size: copy.size });
  } catch (err) {
    ctx.logger.warn(
      { backend: target, charmId: copy.charmId, err: (err as Error).message },
      "copy kept the time it was made: its agent did not set the original's",
    );
  }
}
