// syncAccounts on charm-schema SQLite files (no servers), covering the round's bookkeeping: trust, refs for
// skipped backends, wipes, restored copies, crashes between the DB writes and the base write, limited rounds.
import assert from 'node:assert/strict';
import { copyFileSync, renameSync, rmSync } from 'node:fs';
import { after, beforeEach, describe, it } from 'node:test';
import type { AccountUser } from './account-state.ts';
import { applyAccountStates } from './apply.ts';
import { localBackendAccounts } from './backend-accounts.ts';
import { type AccountBaseStore, createMemoryAccountBaseStore } from './base-store.ts';
import type { BackendDb as KnownDb } from './charm-db.ts';
import { accountsDbPath, readAllAccounts, readMarkerAndAccounts } from './charm-db.ts';
import { AccountSyncBusyError } from './errors.ts';
import { backendsKnowingUser, type SyncReport, syncAccounts } from './sync.ts';

const knowing = async (dbs: readonly KnownDb[], charmId: string) =>
  (await backendsKnowingUser(dbs.map(localBackendAccounts), charmId)).knowing;

import {
  charmAddEncryptKey,
  charmCreateUser,
  charmIncSeq,
  charmLinkKey,
  charmMergeUsers,
  charmSetName,
  charmUnlinkKey,
  createTestDbs,
  type TestDbs,
} from './test-charm-db.ts';

const K1 = 'ssh-ed25519 AAAAkey1';
const K2 = 'ssh-ed25519 AAAAkey2';
const K3 = 'ssh-ed25519 AAAAkey3';
const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';
const NAMES = ['b1', 'b2', 'b3'];

let dbs: TestDbs;
let store: AccountBaseStore;
const cleanups: (() => void)[] = [];
after(() => {
  for (const cleanup of cleanups) cleanup();
});
beforeEach(() => {
  dbs = createTestDbs(NAMES);
  cleanups.push(dbs.cleanup);
  store = createMemoryAccountBaseStore();
});

const on = <T>(name: string, change: (db: ReturnType<TestDbs['open']>) => T): T => {
  const db = dbs.open(name);
  try {
    return change(db);
  } finally {
    db.close();
  }
};
const accounts = (name: string) => on(name, (db) => readAllAccounts(db));
const account = (name: string, charmId: string) => accounts(name).get(charmId);
const keysOn = (name: string, charmId: string) => account(name, charmId)?.keys.map((k) => k.publicKey);
const sync = (
  extra: { charmIds?: string[]; backends?: typeof dbs.backends; store?: AccountBaseStore } = {},
) =>
  syncAccounts({
    backends: (extra.backends ?? dbs.backends).map(localBackendAccounts),
    store: extra.store ?? store,
    charmIds: extra.charmIds,
  });
const changedOn = (report: SyncReport, backend: string) => report.changed.find((c) => c.backend === backend);

/** Every backend holds exactly the same accounts (rows and created_at, ids aside). */
function assertConverged(names = NAMES): Map<string, AccountUser> {
  const [first, ...others] = names.map((name) => accounts(name));
  for (const other of others) assert.deepEqual(other, first);
  return first ?? new Map();
}

describe('syncAccounts on charm DBs', () => {
  it('bootstraps from untrusted backends, then copies a new user with identical rows', async () => {
    const first = await sync();
    assert.deepEqual(first.untrusted, NAMES);
    assert.deepEqual((await sync()).untrusted, [], 'adopted after a full round');

    on('b1', (db) => {
      charmCreateUser(db, U1, K1, '2024-03-01 10:00:00');
      charmAddEncryptKey(db, K1, 'g1', '2024-03-01 10:00:05');
      charmAddEncryptKey(db, K1, 'g0', '2024-03-01 10:00:05');
      charmIncSeq(db, U1, 'kv', 3);
    });
    const report = await sync();
    assert.equal(report.users, 1);
    assert.deepEqual(changedOn(report, 'b2'), {
      backend: 'b2',
      usersAdded: 1,
      usersDeleted: 0,
      keysAdded: 1,
      keysDeleted: 0,
      encryptKeysAdded: 2,
      namesSet: 0,
      seqsRaised: 1,
    });
    const all = assertConverged();
    assert.deepEqual(
      all.get(U1)?.keys[0]?.encryptKeys.map((e) => [e.globalId, e.createdAt]),
      [
        ['g1', '2024-03-01 10:00:05'],
        ['g0', '2024-03-01 10:00:05'],
      ],
    );
    assert.equal(all.get(U1)?.seqs[0]?.seq, 2);
    assert.deepEqual(await knowing(dbs.backends, U1), NAMES);
    assert.deepEqual(report.skipped, []);
  });

  it('propagates a link, an unlink and a last-key unlink, and never brings them back', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmCreateUser(db, U2, K3);
    });
    await sync();
    on('b1', (db) => charmLinkKey(db, U1, K2));
    await sync();
    for (const name of NAMES) assert.deepEqual(keysOn(name, U1), [K1, K2]);

    on('b1', (db) => {
      charmUnlinkKey(db, U1, K2);
      charmUnlinkKey(db, U2, K3);
    });
    const report = await sync();
    assert.equal(changedOn(report, 'b3')?.keysDeleted, 1);
    assert.equal(changedOn(report, 'b3')?.usersDeleted, 1);
    for (const name of NAMES) {
      assert.deepEqual(keysOn(name, U1), [K1]);
      assert.equal(account(name, U2), undefined);
    }
    await sync();
    await sync();
    assertConverged();
    for (const name of NAMES) assert.equal(account(name, U2), undefined);
    assert.deepEqual(keysOn('b2', U1), [K1]);
  });

  it('propagates a merge of U2 into U1 (key and encrypt key move, U2 and its seqs go)', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmAddEncryptKey(db, K1, 'g1', '2024-01-01 00:00:01');
      charmCreateUser(db, U2, K2);
      charmAddEncryptKey(db, K2, 'g2', '2024-01-01 00:00:02');
      charmIncSeq(db, U2, 'kv', 2);
    });
    await sync();
    on('b1', (db) => charmMergeUsers(db, U1, U2));
    const report = await sync();
    assert.deepEqual(report.conflicts, []);
    const all = assertConverged();
    assert.equal(all.get(U2), undefined);
    assert.deepEqual(
      all.get(U1)?.keys.map((k) => [k.publicKey, k.encryptKeys.map((e) => e.globalId)]),
      [
        [K1, ['g1']],
        [K2, ['g2']],
      ],
    );
  });

  it('skips an unreachable backend (not empty!) and catches it up later against what it had', async () => {
    on('b1', (db) => charmCreateUser(db, U1, K1));
    on('b1', (db) => charmLinkKey(db, U1, K2));
    await sync();
    const b2 = dbs.backends[1]?.dataDir ?? '';
    renameSync(b2, `${b2}.away`);
    on('b1', (db) => {
      charmUnlinkKey(db, U1, K2);
      charmLinkKey(db, U1, K3);
      charmCreateUser(db, U2, 'ssh-ed25519 AAAAnew');
    });
    const report = await sync();
    assert.deepEqual(
      report.skipped.map((s) => s.backend),
      ['b2'],
    );
    assert.deepEqual(keysOn('b3', U1), [K1, K3]);
    renameSync(`${b2}.away`, b2);
    // b2 still has K2 and lacks K3 and U2: neither a reason to resurrect K2 nor to remove K3 or U2.
    const back = await sync();
    assert.deepEqual(back.untrusted, []);
    assertConverged();
    assert.deepEqual(keysOn('b2', U1), [K1, K3]);
    assert.ok(account('b2', U2));
  });

  it('keeps the refs of a recorded DB while another (empty) DB stands in for it, unadopted', async () => {
    on('b1', (db) => charmCreateUser(db, U1, K1));
    await sync();
    const b2 = dbs.backends[1]?.dataDir ?? '';
    renameSync(b2, `${b2}.real`); // the volume is gone…
    on('b1', (db) => {
      charmLinkKey(db, U1, K2);
      charmUnlinkKey(db, U1, K1);
    });
    await sync();
    dbs.create('b2'); // …and the server started on an empty dir meanwhile
    const limited = await sync({ charmIds: [U1] });
    assert.deepEqual(limited.untrusted, ['b2']);
    rmSync(b2, { recursive: true });
    renameSync(`${b2}.real`, b2); // the real volume is back, with its recorded marker
    const back = await sync();
    assert.deepEqual(back.untrusted, []);
    assertConverged();
    assert.deepEqual(keysOn('b2', U1), [K2], 'K2 kept, K1 not resurrected');
  });

  it('refills a wiped backend without anyone losing anything, and without resurrecting unlinked keys', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmLinkKey(db, U1, K2);
      charmAddEncryptKey(db, K1, 'g1', '2024-01-01 00:00:01');
      charmCreateUser(db, U2, K3);
      charmIncSeq(db, U2, 'kv', 5);
    });
    await sync();
    dbs.wipe('b3'); // server stopped, DB gone: skipped, never read as "every user deleted"
    const whileGone = await sync();
    assert.match(whileGone.skipped[0]?.reason ?? '', /no DB file/);
    assert.ok(account('b1', U2));
    on('b1', (db) => charmUnlinkKey(db, U1, K2));
    dbs.create('b3'); // server restarted: an empty DB
    const refill = await sync();
    assert.deepEqual(refill.untrusted, ['b3']);
    assert.equal(changedOn(refill, 'b3')?.usersAdded, 2);
    const all = assertConverged();
    assert.deepEqual(
      all.get(U1)?.keys.map((k) => k.publicKey),
      [K1],
    );
    assert.deepEqual((await sync()).untrusted, []);
  });

  it('does not trust a DB restored from an older copy (markers rotate every round)', async () => {
    on('b1', (db) => charmCreateUser(db, U1, K1));
    await sync();
    const b2Db = accountsDbPath(dbs.backends[1] ?? { name: '', dataDir: '' });
    copyFileSync(b2Db, `${b2Db}.backup`);
    on('b1', (db) => {
      charmLinkKey(db, U1, K2);
      charmCreateUser(db, U2, K3);
    });
    await sync();
    on('b1', (db) => charmUnlinkKey(db, U1, K1));
    await sync();
    copyFileSync(`${b2Db}.backup`, b2Db); // has K1 (since unlinked) and lacks K2 and U2 (added since)
    const report = await sync();
    assert.deepEqual(report.untrusted, ['b2']);
    assertConverged();
    assert.deepEqual(keysOn('b1', U1), [K2]);
    assert.ok(account('b1', U2));
  });

  it('stays correct when a round dies between the DB writes and the base write', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmLinkKey(db, U1, K2);
    });
    await sync();
    on('b1', (db) => charmUnlinkKey(db, U1, K2));
    let writes = 0;
    const dying: AccountBaseStore = {
      ...store,
      async write(token, change) {
        writes++;
        if (writes === 2) throw new Error('redis went away');
        return store.write(token, change);
      },
    };
    await assert.rejects(sync({ store: dying }), /redis went away/);
    for (const name of NAMES) assert.deepEqual(keysOn(name, U1), [K1], 'the DBs took the round');
    const report = await sync();
    assert.deepEqual(report.untrusted, [], 'pending markers keep them trusted');
    for (const name of NAMES) assert.deepEqual(keysOn(name, U1), [K1], 'K2 not resurrected');
  });

  it('limits a round to charmIds, pulling in users that share a key (merge) with them', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmCreateUser(db, U2, K2);
    });
    const limited = await sync({ charmIds: [U1] });
    assert.equal(limited.users, 1);
    assert.ok(account('b2', U1));
    assert.equal(account('b2', U2), undefined, 'U2 left alone');
    assert.deepEqual(limited.untrusted, NAMES, 'a limited round never adopts');
    await sync();
    on('b1', (db) => charmMergeUsers(db, U1, U2));
    const merge = await sync({ charmIds: [U1] });
    assert.deepEqual(merge.conflicts, []);
    assertConverged();
    assert.equal(account('b3', U2), undefined);
    assert.deepEqual(keysOn('b3', U1), [K1, K2]);
  });

  it('raises seqs to the maximum and settles names, reporting a taken name', async () => {
    on('b1', (db) => {
      charmCreateUser(db, U1, K1);
      charmCreateUser(db, U2, K2);
    });
    await sync();
    on('b2', (db) => charmIncSeq(db, U1, 'kv', 4));
    on('b1', (db) => {
      charmIncSeq(db, U1, 'kv', 2);
      charmSetName(db, U1, 'alice');
    });
    on('b2', (db) => charmSetName(db, U2, 'Alice'));
    const report = await sync();
    assert.equal(report.conflicts.length, 1);
    const all = assertConverged();
    assert.equal(all.get(U1)?.seqs[0]?.seq, 3);
    assert.equal(all.get(U1)?.name, 'alice');
    assert.equal(all.get(U2)?.name, null);
    on('b3', (db) => charmSetName(db, U2, 'carol'));
    await sync();
    assert.equal(assertConverged().get(U2)?.name, 'carol');
  });

  it('leaves a user that changed between the read and the write for the next round', () => {
    on('b1', (db) => charmCreateUser(db, U1, K1));
    const { marker, users } = on('b2', (db) => readMarkerAndAccounts(db));
    const target = on('b1', (db) => readAllAccounts(db)).get(U1) ?? assert.fail('no user');
    on('b2', (db) => charmCreateUser(db, U1, K1)); // the "server" wrote meanwhile
    const result = on('b2', (db) =>
      applyAccountStates(db, {
        backend: 'b2',
        targets: new Map([[U1, { ...target, name: 'x' }]]),
        snapshot: users,
        expectedMarker: marker,
        now: new Date(),
      }),
    );
    assert.deepEqual(result.deferred, [U1]);
    assert.equal(account('b2', U1)?.name, null);
  });

  it('keeps a backend trusted when the answer of an apply that committed was lost', async () => {
    await sync();
    await sync();
    on('b1', (db) => charmCreateUser(db, U1, K1));
    // The agent of b2 commits the round, then the answer is lost (a reset connection, a timeout).
    const lossy = dbs.backends.map(localBackendAccounts).map((b) =>
      b.name !== 'b2'
        ? b
        : {
            ...b,
            apply: async (plan: Parameters<typeof b.apply>[0]) => {
              await b.apply(plan);
              throw new Error('socket hang up');
            },
          },
    );
    const report = await syncAccounts({ backends: lossy, store });
    assert.ok(report.skipped.some((s) => s.backend === 'b2' && /socket hang up/.test(s.reason)));
    assert.deepEqual(keysOn('b2', U1), [K1], 'the apply did commit');
    const next = await sync();
    assert.deepEqual(next.untrusted, [], 'b2 holds the pending marker it was given: still trusted');
  });

  it('runs one round at a time', async () => {
    const token = (await store.acquireLock(60_000)) ?? assert.fail('no lock');
    await assert.rejects(
      syncAccounts({ backends: dbs.backends.map(localBackendAccounts), store, lockWaitMs: 150 }),
      AccountSyncBusyError,
    );
    await store.releaseLock(token);
    await sync();
  });
});

describe('quiet rounds', () => {
  it('a round that changes nothing writes no DB (no write lock, markers kept)', async () => {
    on('b1', (db) => charmCreateUser(db, U1, K1));
    await sync();
    await sync(); // the first adopts every backend; from here all are trusted and equal
    const markers = NAMES.map((name) => on(name, (db) => readMarkerAndAccounts(db).marker));
    const report = await sync();
    assert.deepEqual(
      NAMES.map((name) => on(name, (db) => readMarkerAndAccounts(db).marker)),
      markers,
    );
    for (const changed of report.changed) {
      assert.deepEqual(
        Object.values(changed).filter((v) => typeof v === 'number' && v > 0),
        [],
        changed.backend,
      );
    }
    // A change by the server on one backend rotates that backend's marker (a restored older copy is then untrusted).
    on('b2', (db) => charmLinkKey(db, U1, K2));
    await sync();
    assert.notEqual(
      on('b2', (db) => readMarkerAndAccounts(db).marker),
      markers[1],
    );
    assert.deepEqual(keysOn('b3', U1)?.sort(), [K1, K2]);
  });
});
