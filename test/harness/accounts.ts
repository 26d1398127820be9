import { type AccountUser, normalizeUser, openBackendDb, readAccount } from '@cring/accounts';
import type { Cluster } from '@cring/local-cluster';

/** A user's account rows on one backend (ids left out: they are each backend's own), read from its SQLite. */
export function accountOn(cluster: Cluster, backendIndex: number, charmId: string): AccountUser | undefined {
  const backend = cluster.backends[backendIndex];
  if (!backend) throw new Error(`no backend #${backendIndex}`);
  const db = openBackendDb({ name: backend.info.name, dataDir: backend.info.dataDir });
  try {
    const user = readAccount(db, charmId);
    return user && normalizeUser(user);
  } finally {
    db.close();
  }
}
