import type { AccountBaseStore, AccountUser } from '@cring/accounts';

const CACHE_MS = 30_000;

/**
 * Finds a user by SSH public key in the account sync's merged state (Redis), for answering SSH while no backend
 * is reachable. Cached briefly: in that mode every command authenticates twice.
 */
export function createAccountLookup(store: Pick<AccountBaseStore, 'readEntries'>) {
  let cache: { at: number; byKey: Map<string, AccountUser> } | undefined;
  return {
    async userForKey(publicKey: string): Promise<AccountUser | undefined> {
      if (!cache || Date.now() - cache.at > CACHE_MS) {
        const byKey = new Map<string, AccountUser>();
        for (const entry of (await store.readEntries()).values()) {
          if (!entry.user) continue;
          for (const key of entry.user.keys) byKey.set(key.publicKey, entry.user);
        }
        cache = { at: Date.now(), byKey };
      }
      return cache.byKey.get(publicKey);
    },
  };
}

export type AccountLookup = ReturnType<typeof createAccountLookup>;
