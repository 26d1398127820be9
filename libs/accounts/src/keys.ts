// The account sync's Redis key layout, in one place. One hash tag, {accounts}, so the round's atomic write
// (a Lua script over all of them) stays in one Redis Cluster slot.
/** Same prefix as the manifest's keys (libs/manifest). */
export const KEY_PREFIX = 'cring';

export const accountKeys = {
  /** HASH charmId → JSON BaseEntry: the merged state after the last round, tombstones, lagging backends' refs. */
  base: () => `${KEY_PREFIX}:{accounts}:base`,
  /** HASH backend name → the replica marker its DB held when a round last left it. */
  markers: () => `${KEY_PREFIX}:{accounts}:markers`,
  /** HASH backend name → the marker a round in progress is writing into its DB (trusted too, after a crash). */
  pendingMarkers: () => `${KEY_PREFIX}:{accounts}:markers-pending`,
  /** SET of charmIds whose base entry has refs: every round merges them until every backend caught up. */
  lagging: () => `${KEY_PREFIX}:{accounts}:lagging`,
  /** SET of charmIds known to exist on every backend that was reachable: the gateway's fast path. */
  synced: () => `${KEY_PREFIX}:{accounts}:synced`,
  /** STRING ISO time of the last account backup to S3. */
  lastBackup: () => `${KEY_PREFIX}:{accounts}:last-backup`,
  /** STRING sha256 of the merged account state that backup holds. */
  lastBackupDigest: () => `${KEY_PREFIX}:{accounts}:last-backup-digest`,
  /** STRING the account primary's backend name, a lease (PX) every gateway renews while it is healthy. */
  primary: () => `${KEY_PREFIX}:{accounts}:primary`,
  /** STRING lock token: one round at a time. */
  lock: () => `${KEY_PREFIX}:{accounts}:lock`,
};
