/**
 * The nemesis suite's checker: given a history of client operations (what was asked, what was answered, when)
 * and what the cluster holds once healed, lists every violation of the data-safety invariants. Pure: no I/O.
 *
 * An operation "takes effect" somewhere between its start and its end. For one path, the value an observer may
 * see at time T is the value of an operation O that started before T and that no acknowledged operation
 * superseded (one that started after O ended and ended before T). Then:
 * - an acknowledged write is readable unless an acknowledged later write or delete replaced it;
 * - an acknowledged delete is never undone (its path never comes back with an older write's bytes);
 * - a refused write (the gateway answered an error) is never seen, nor held as current;
 * - every owner and the S3 bucket hold what the gateway serves (convergence), and a pruned former owner nothing.
 * An operation whose answer never arrived (a timeout, a cut connection) may or may not have taken effect.
 * After Redis lost its tail, a read may see the path as it was before a change acknowledged in that tail (LostTail).
 */

/** `ok`: acknowledged (200); `refused`: answered with an error; `unknown`: no answer (it may have happened). */
export type Outcome = 'ok' | 'refused' | 'unknown';

export const ABSENT = 'absent';
/** What the gateway served for a path that kept answering 5xx once everything was healed. */
export const UNANSWERED = 'unanswered';

export type Operation =
  | { op: 'write'; path: string; sha256: string; outcome: Outcome; startMs: number; endMs: number }
  /** A recursive delete: covers path and everything below it. */
  | { op: 'delete'; path: string; outcome: Outcome; startMs: number; endMs: number }
  /** What a read saw: a file's sha256, or ABSENT. Only reads that got an answer are checked. */
  | { op: 'read'; path: string; seen: string; outcome: Outcome; startMs: number; endMs: number };

export interface FinalState {
  /** What a client reading through the gateway gets for each path the history touched (sha256 or ABSENT). */
  served: ReadonlyMap<string, string>;
  /**
   * What the gateway serves raw (as stored: the CLI's names and bytes are encrypted) for every path a store holds
   * and every raw path the history touched: what every store must hold.
   */
  servedRaw: ReadonlyMap<string, string>;
  /** Per owner and `s3`: every file it holds for the user (path → sha256). */
  stores: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** Backends that owned the user before a ring change and were pruned since: they must hold none of it. */
  formerOwners?: ReadonlyMap<string, ReadonlyMap<string, string>>;
}

export type ViolationKind =
  | 'acknowledged-write-lost'
  | 'delete-undone'
  | 'unacknowledged-served'
  | 'stale-read'
  | 'not-converged'
  /** Once healed, the path still had no answer (a 5xx): readable nowhere. */
  | 'unreadable';

export interface Violation {
  kind: ViolationKind;
  path: string;
  detail: string;
}

interface Effect {
  value: string;
  outcome: Outcome;
  startMs: number;
  endMs: number;
  op: 'write' | 'delete';
}

const covers = (prefix: string, path: string) =>
  prefix === '/' || path === prefix || path.startsWith(`${prefix}/`);

/** Every change that may have set `path`, oldest start first. */
function effectsOn(history: readonly Operation[], path: string): Effect[] {
  const effects: Effect[] = [];
  for (const entry of history) {
    if (entry.op === 'write' && entry.path === path)
      effects.push({
        value: entry.sha256,
        outcome: entry.outcome,
        startMs: entry.startMs,
        endMs: entry.endMs,
        op: 'write',
      });
    if (entry.op === 'delete' && covers(entry.path, path))
      effects.push({
        value: ABSENT,
        outcome: entry.outcome,
        startMs: entry.startMs,
        endMs: entry.endMs,
        op: 'delete',
      });
  }
  return effects.sort((a, b) => a.startMs - b.startMs);
}

/**
 * Redis restored from a copy taken at `copiedMs` (the nemesis's `redis-lost-tail`), killed and replaced at
 * `restoredMs`: a change acknowledged in between may be missing from the manifest until the healer's final scans
 * record it again (rows L1, L2), as DESIGN.md's durability section says of a lost Redis tail.
 */
export interface LostTail {
  copiedMs: number;
  restoredMs: number;
}

/**
 * The values a read ending at `atMs` (and starting at `fromMs`) may see. The path starts absent. A change whose
 * commit may have gone with a lost tail supersedes nothing for a read that ended after that tail's restore: such a
 * read may see what the path was before it. Only reads are judged so; once healed, the change must be back.
 */
function admissible(
  effects: readonly Effect[],
  fromMs: number,
  atMs: number,
  lostTails: readonly LostTail[] = [],
): Set<string> {
  const candidates = effects.filter((e) => e.outcome !== 'refused' && e.startMs < atMs);
  const mayBeLost = (e: Effect) =>
    lostTails.some(
      (tail) => e.endMs > tail.copiedMs && e.startMs < tail.restoredMs && atMs > tail.restoredMs,
    );
  const superseded = (e: Effect | undefined) =>
    candidates.some(
      (later) =>
        later.outcome === 'ok' &&
        later.startMs > (e?.endMs ?? -Infinity) &&
        later.endMs < fromMs &&
        !mayBeLost(later),
    );
  const values = new Set<string>();
  if (!superseded(undefined)) values.add(ABSENT);
  for (const effect of candidates) if (!superseded(effect)) values.add(effect.value);
  return values;
}

function describe(effects: readonly Effect[], value: string): string {
  const match = effects.find((e) => e.value === value);
  if (value === UNANSWERED) return 'no answer (5xx) after healing';
  if (!match) return value === ABSENT ? 'absent' : `bytes ${value.slice(0, 12)}… no operation wrote`;
  return `${match.op === 'delete' ? 'deleted' : `bytes ${value.slice(0, 12)}…`} (${match.outcome}, ${match.startMs}-${match.endMs} ms)`;
}

/** Why the final value is wrong, by the invariant it breaks. */
function classifyFinal(effects: readonly Effect[], value: string): ViolationKind {
  if (effects.some((e) => e.value === value && e.outcome === 'refused' && e.op === 'write'))
    return 'unacknowledged-served';
  // The bytes came back after an acknowledged delete removed them (and no acknowledged write replaced them since
  // the delete): a resurrection. Anything else lost a later acknowledged write.
  if (value === ABSENT) return 'acknowledged-write-lost';
  const lastWritten = Math.max(
    ...effects.filter((e) => e.op === 'write' && e.value === value).map((e) => e.endMs),
  );
  const lastDelete = effects.filter(
    (e) => e.op === 'delete' && e.outcome === 'ok' && e.startMs > lastWritten,
  );
  const rewritten = effects.some((e) => e.op === 'write' && e.outcome === 'ok' && e.startMs > lastWritten);
  return lastDelete.length > 0 && !rewritten ? 'delete-undone' : 'acknowledged-write-lost';
}

export function checkHistory(
  history: readonly Operation[],
  final: FinalState,
  lostTails: readonly LostTail[] = [],
): Violation[] {
  const violations: Violation[] = [];
  const paths = new Set(history.filter((e) => e.op === 'write' || e.op === 'read').map((e) => e.path));
  const endMs = Math.max(0, ...history.map((e) => e.endMs)) + 1;

  for (const path of [...paths].sort()) {
    const effects = effectsOn(history, path);
    const served = final.served.get(path) ?? ABSENT;
    const allowed = admissible(effects, endMs, endMs);
    if (!allowed.has(served)) {
      violations.push({
        kind: served === UNANSWERED ? 'unreadable' : classifyFinal(effects, served),
        path,
        detail: `served ${describe(effects, served)}; allowed: ${[...allowed].map((v) => describe(effects, v)).join(' or ')}`,
      });
    }
  }

  // Convergence, on every stored path: also a stray copy that no client path names (a refused write's bytes
  // under the CLI's encrypted names) is found.
  const stored = new Set([
    ...final.servedRaw.keys(),
    ...[...final.stores.values(), ...(final.formerOwners?.values() ?? [])].flatMap((f) => [...f.keys()]),
  ]);
  for (const path of [...stored].sort()) {
    const effects = effectsOn(history, path);
    const served = final.servedRaw.get(path) ?? ABSENT;
    for (const [store, files] of final.stores) {
      const held = files.get(path) ?? ABSENT;
      if (held !== served)
        violations.push({
          kind: 'not-converged',
          path,
          detail: `${store} holds ${describe(effects, held)}, the gateway serves ${describe(effects, served)}`,
        });
    }
    for (const [former, files] of final.formerOwners ?? []) {
      const held = files.get(path);
      if (held !== undefined)
        violations.push({
          kind: 'not-converged',
          path,
          detail: `${former} is no longer an owner yet still holds ${describe(effects, held)} after --prune`,
        });
    }
  }

  for (const read of history) {
    if (read.op !== 'read' || read.outcome !== 'ok') continue;
    const effects = effectsOn(history, read.path);
    const allowed = admissible(effects, read.startMs, read.endMs, lostTails);
    if (allowed.has(read.seen)) continue;
    const refused = effects.some((e) => e.value === read.seen && e.outcome === 'refused');
    violations.push({
      kind: refused ? 'unacknowledged-served' : 'stale-read',
      path: read.path,
      detail: `a read at ${read.startMs}-${read.endMs} ms saw ${describe(effects, read.seen)}; allowed: ${[...allowed].map((v) => describe(effects, v)).join(' or ')}`,
    });
  }
  return violations;
}

/** Counts for the report: operations, acknowledged, refused, unknown. */
export function summarize(history: readonly Operation[]) {
  const count = (outcome: Outcome) => history.filter((e) => e.outcome === outcome).length;
  return {
    operations: history.length,
    acknowledged: count('ok'),
    refused: count('refused'),
    unknown: count('unknown'),
  };
}
