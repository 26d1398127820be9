/**
 * Failed writes this gateway could not roll back (typically: Redis went away between the POSTs and the commit),
 * remembered in memory with the backends they touched. The durable record is the write intent in Redis; this
 * copy serves reads while Redis is unreachable, so they never relay those backends' unacknowledged bytes.
 * Forgotten once the manifest answers again (the intent then governs) or a later change of the path commits.
 */
export interface UnresolvedWrites {
  remember(charmId: string, path: string, touched: readonly string[]): void;
  /** Backends holding unacknowledged bytes of path, as far as this gateway knows. */
  touched(charmId: string, path: string): ReadonlySet<string>;
  forget(charmId: string, path: string): void;
}

// Bounded: past this many, the oldest are dropped (the intents in Redis still hold them).
const MAX_REMEMBERED = 10_000;

export function createUnresolvedWrites(): UnresolvedWrites {
  const writes = new Map<string, Set<string>>();
  const key = (charmId: string, path: string) => `${charmId}\0${path}`;
  return {
    remember(charmId, path, touched) {
      const known = writes.get(key(charmId, path)) ?? new Set<string>();
      for (const backend of touched) known.add(backend);
      writes.delete(key(charmId, path));
      writes.set(key(charmId, path), known);
      if (writes.size > MAX_REMEMBERED) writes.delete(writes.keys().next().value as string);
    },
    touched: (charmId, path) => writes.get(key(charmId, path)) ?? new Set(),
    forget(charmId, path) {
      writes.delete(key(charmId, path));
    },
  };
}
