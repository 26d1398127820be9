/**
 * Placement: maps a key (a user's charm_id) to an ordered preference list of distinct backends.
 *
 * Built on `consistent-hashing` (md5 virtual nodes). The order depends only on the backend names and the key,
 * so every process computes the same list, before and after a restart. The preference list walks the ring
 * clockwise from the key's position and keeps the first `n` distinct backends, so adding or removing one of
 * N backends changes the owner set of only the keys whose walk passes the changed backend.
 */
import ConsistentHashing from 'consistent-hashing';

export const DEFAULT_VIRTUAL_NODES = 160;

export interface Ring {
  readonly backends: readonly string[];
  /** The first `n` distinct backends for `key` (capped at the number of backends), in preference order. */
  preferenceList(key: string, n: number): string[];
}

export interface RingOptions {
  virtualNodes?: number;
}

export function createRing(backendNames: readonly string[], options: RingOptions = {}): Ring {
  const names = [...backendNames];
  if (new Set(names).size !== names.length) throw new Error(`duplicate backend names in ${names.join(', ')}`);
  if (names.some((name) => name.length === 0)) throw new Error('a backend name is empty');
  const hashing = new ConsistentHashing(names, { replicas: options.virtualNodes ?? DEFAULT_VIRTUAL_NODES });
  // The package counts `Object.keys(ring)` on every lookup (O(ring size)); the sorted key array has the same length.
  hashing.getRingLength = () => hashing.keys.length;
  const positions = hashing.keys;

  return {
    backends: names,
    preferenceList(key: string, n: number): string[] {
      const wanted = Math.min(n, names.length);
      const list: string[] = [];
      if (wanted <= 0) return list;
      const start = hashing.getNodePosition(hashing.crypto(key));
      for (let step = 0; step < positions.length && list.length < wanted; step++) {
        const position = positions[(start + step) % positions.length] as string;
        const backend = hashing.ring[position] as string;
        if (!list.includes(backend)) list.push(backend);
      }
      return list;
    },
  };
}
