import type { Backend } from '@cring/charm';
import type { Ring } from '@cring/ring';

export interface Placement {
  /** The user's owners: the first N backends of their preference list. */
  owners(charmId: string): Backend[];
  /**
   * Where a write goes: owners (healthy first), then the other backends as sloppy-quorum stand-ins; a backend
   * under its free-space reserve is left out, like a down one its owners' copies are repaired later.
   */
  writeCandidates(charmId: string): Backend[];
  /** Where a delete goes: every backend in the same order, full ones included (a delete frees space). */
  deleteCandidates(charmId: string): Backend[];
  /** Backends under their free-space reserve right now, in configured order. */
  underReserve(): string[];
  /** Where a read goes: `preferred` first, then owners, then everyone else; healthy before unhealthy in each group. */
  readCandidates(charmId: string, preferred: ReadonlySet<string>, avoid: ReadonlySet<string>): Backend[];
  /** Account-state requests: the account primary (the SSH lease holder) first, then healthy ones in configured order. */
  accountCandidates(): Backend[];
  byName(name: string): Backend | undefined;
  /** Whether the backend passes its health probes now. */
  isHealthy(name: string): boolean;
  all(): readonly Backend[];
}

const MAX_REMEMBERED_USERS = 100_000;

export function createPlacement(options: {
  ring: Ring;
  backends: readonly Backend[];
  replicationFactor: number;
  isHealthy: (name: string) => boolean;
  /** The cluster's account primary (the lease holder), when known. */
  accountPrimary?: () => string | undefined;
  /** False while the backend is under its free-space reserve. */
  hasSpace: (name: string) => boolean;
}): Placement {
  const byName = new Map(options.backends.map((b) => [b.name, b]));
  const resolve = (names: string[]) => names.map((name) => byName.get(name) as Backend);
  const healthyFirst = (list: Backend[]) => [
    ...list.filter((b) => options.isHealthy(b.name)),
    ...list.filter((b) => !options.isHealthy(b.name)),
  ];
  // A user's list never changes in this process (the backends are fixed at start): looked up once per user, not
  // once per request (an md5 and a walk of the ring; a read asked for it twice). Only read here, never handed out.
  const preferences = new Map<string, Backend[]>();
  const preference = (charmId: string) => {
    let list = preferences.get(charmId);
    if (!list) {
      if (preferences.size >= MAX_REMEMBERED_USERS) preferences.clear();
      list = resolve(options.ring.preferenceList(charmId, options.backends.length));
      preferences.set(charmId, list);
    }
    return list;
  };

  const ownersThenStandIns = (charmId: string) => {
    const list = preference(charmId);
    return [
      ...healthyFirst(list.slice(0, options.replicationFactor)),
      ...healthyFirst(list.slice(options.replicationFactor)),
    ];
  };

  return {
    owners: (charmId) => preference(charmId).slice(0, options.replicationFactor),
    writeCandidates: (charmId) => ownersThenStandIns(charmId).filter((b) => options.hasSpace(b.name)),
    deleteCandidates: ownersThenStandIns,
    underReserve: () => options.backends.filter((b) => !options.hasSpace(b.name)).map((b) => b.name),
    readCandidates(charmId, preferred, avoid) {
      const list = preference(charmId);
      const owners = list.slice(0, options.replicationFactor);
      // A holder of the version is never behind on it, whatever else it has pending: holders always come first.
      const groups = [
        list.filter((b) => preferred.has(b.name)),
        owners.filter((b) => !preferred.has(b.name) && !avoid.has(b.name)),
        list.filter((b) => !preferred.has(b.name) && !owners.includes(b) && !avoid.has(b.name)),
        list.filter((b) => avoid.has(b.name) && !preferred.has(b.name)),
      ];
      return groups.flatMap(healthyFirst);
    },
    accountCandidates() {
      const list = healthyFirst([...options.backends]);
      const primary = options.accountPrimary?.();
      const at = list.findIndex((b) => b.name === primary);
      // Where SSH sends sign-ups and links is where a name change is checked first, so both agree.
      if (at > 0 && options.isHealthy(primary as string)) list.unshift(...list.splice(at, 1));
      return list;
    },
    byName: (name) => byName.get(name),
    isHealthy: (name) => options.isHealthy(name),
    all: () => options.backends,
  };
}

/**
 * The order an overwrite tries its candidates in. When every holder of the version it replaces is among the first
 * `quorum` (the jobs have not copied it elsewhere yet), the write would rewrite every copy in place, and a failed
 * or abandoned overwrite could not be rolled back. Then one holder goes last and the next healthy candidate takes
 * its place, so that the acknowledged bytes stay untouched there until the overwrite is acknowledged.
 */
export function sparingAHolder(
  candidates: readonly Backend[],
  holders: readonly string[],
  quorum: number,
  isHealthy: (name: string) => boolean,
): Backend[] {
  const first = candidates.slice(0, quorum);
  const rest = candidates.slice(quorum);
  const everyCopyTouched = holders.length > 0 && holders.every((h) => first.some((b) => b.name === h));
  const replacement = rest.find((b) => isHealthy(b.name));
  if (!everyCopyTouched || !replacement) return [...candidates];
  const spared = [...first].reverse().find((b) => holders.includes(b.name)) as Backend;
  return [
    ...first.filter((b) => b !== spared),
    replacement,
    ...rest.filter((b) => b !== replacement),
    spared,
  ];
}
