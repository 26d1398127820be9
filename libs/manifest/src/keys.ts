// The manifest's Redis key layout, in one place. Every key of a user carries the hash tag {charmId}, so one
// user's keys share a Redis Cluster slot and each Lua script touches a single slot.
export const KEY_PREFIX = 'cring';

export const manifestKeys = {
  /** INCR once per acknowledged write or delete: the total order of one user's changes. */
  version: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:version`,
  /** HASH path → JSON entry (file version or tombstone). */
  entries: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:entries`,
  /**
   * HASH path → tombstone version: deletes whose covered entries are still being removed (in chunks). Until a sweep
   * finishes, entries below its path older than its version are hidden from every read, as if already removed.
   */
  sweeps: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:sweeps`,
  /** HASH "<backend>|<jobId>" → enqueue time: changes a backend has not applied yet. */
  pending: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:pending`,
  /** HASH path → JSON {fence, exp, owner}: mutations in flight. */
  locks: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:locks`,
  /** INCR once per lock taken: the fencing tokens of the user's path locks (monotonic). */
  fence: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:fence`,
  /** HASH path → JSON write intent {fence, at, owner, prev, state, touched}: writes not yet acknowledged. */
  intents: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:intents`,
  /** HASH seq name → highest value ever handed out. */
  seqFloors: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:seq`,
  /** HASH encrypt key id → the created_at the gateway stamped first (retries reuse it). */
  encryptKeyStamps: (charmId: string) => `${KEY_PREFIX}:{${charmId}}:encrypt-key-stamps`,
  /** SET of every charm_id the manifest has seen. */
  users: () => `${KEY_PREFIX}:users`,
};

/** A process's liveness announcement (value: its current nonce), see liveness.ts. */
export const livenessKey = (name: string) => `${KEY_PREFIX}:live:${name}`;
