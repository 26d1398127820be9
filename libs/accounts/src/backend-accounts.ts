// Where a sync round reads and applies one backend's account rows. Beside the backend (its agent, this package's
// own tests) that is the DB file; everywhere else it is that backend's agent over the network. The round
// (sync.ts) only ever sees this interface, so the merge rules do not depend on where the rows live.
import type { DatabaseSync } from 'node:sqlite';
import type { AccountUser } from './account-state.ts';
import { type ApplyPlan, type ApplyResult, applyAccountStates } from './apply.ts';
import { type BackendDb, openBackendDb, readMarkerAndAccounts } from './charm-db.ts';
import { ApplyRefusedError } from './errors.ts';

export interface AccountSnapshot {
  /** The replica marker the DB held (null: none, a new, wiped or replaced DB). */
  marker: string | null;
  users: Map<string, AccountUser>;
}

export interface BackendAccounts {
  readonly name: string;
  /** Every user's rows and the marker, in one read transaction. Throws when the DB cannot be read. */
  read(): Promise<AccountSnapshot>;
  /** One BEGIN IMMEDIATE transaction (apply.ts). A transport error means the outcome is unknown. */
  apply(plan: ApplyPlan): Promise<ApplyResult>;
  /** Every charm_id in the DB (the healer finds users the manifest does not know). */
  charmIds(): Promise<string[]>;
  knowsUser(charmId: string): Promise<boolean>;
}

function withDb<T>(backend: BackendDb, use: (db: DatabaseSync) => T): T {
  const db = openBackendDb(backend);
  try {
    return use(db);
  } finally {
    db.close();
  }
}

/** The rows of a DB file on this machine: what an agent serves, and what this package's tests sync. */
export function localBackendAccounts(backend: BackendDb): BackendAccounts {
  return {
    name: backend.name,
    read: async () => withDb(backend, (db) => readMarkerAndAccounts(db)),
    apply: async (plan) => {
      try {
        return withDb(backend, (db) => applyAccountStates(db, plan));
      } catch (err) {
        // applyAccountStates rolls back on every error: nothing was written.
        throw new ApplyRefusedError((err as Error).message, { cause: err });
      }
    },
    charmIds: async () =>
      withDb(backend, (db) =>
        (db.prepare('SELECT charm_id FROM charm_user').all() as { charm_id: string }[]).map(
          (r) => r.charm_id,
        ),
      ),
    knowsUser: async (charmId) =>
      withDb(
        backend,
        (db) => db.prepare('SELECT 1 FROM charm_user WHERE charm_id = ?').get(charmId) !== undefined,
      ),
  };
}
