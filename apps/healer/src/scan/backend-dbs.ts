import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';

const BUSY_TIMEOUT_MS = 5000;

/**
 * Every charm_id in a backend's own DB (`DATA_DIR/db/charm_sqlite.db`), opened read-only: users whose files were
 * written before the gateway existed have no manifest entry and may have no backup yet.
 */
export function usersInBackendDb(dataDir: string): string[] {
  const db = new DatabaseSync(join(dataDir, 'db', 'charm_sqlite.db'), {
    readOnly: true,
    timeout: BUSY_TIMEOUT_MS,
  });
  try {
    return (db.prepare('SELECT charm_id FROM charm_user').all() as { charm_id: string }[]).map(
      (row) => row.charm_id,
    );
  } finally {
    db.close();
  }
}
