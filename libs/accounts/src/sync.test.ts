// Account sync against real charm servers (v0.12.6) sharing one server key, driven by the real charm CLI and
// charm's SSH API. The steps build on each other and run in order.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CharmBackend, type Cluster, startCluster } from '@cring/local-cluster';
import { Redis } from 'ioredis';
import { createCharmBackend } from '../../../tools/local-cluster/src/charm-backend.ts';
import type { AccountUser } from './account-state.ts';
import { localBackendAccounts } from './backend-accounts.ts';
import { type AccountBaseStore, createRedisAccountBaseStore } from './base-store.ts';
import type { BackendDb as KnownDb } from './charm-db.ts';
import { accountsDbPath, type BackendDb, openBackendDb, readAccount, readAllAccounts } from './charm-db.ts';
import { initBackendFrom, SERVER_KEY_FILE } from './snapshot.ts';
import { backendsKnowingUser, type SyncReport, syncAccounts } from './sync.ts';

const knowing = async (dbs: readonly KnownDb[], charmId: string) =>
  (await backendsKnowingUser(dbs.map(localBackendAccounts), charmId)).knowing;

import {
  type CharmCli,
  charmCli,
  generateKeyPair,
  keyText,
  linkKeys,
  sshCommand,
  unlinkKey,
} from './test-charm-ssh.ts';

describe('account sync between real charm servers', { timeout: 600_000 }, () => {
  let runDir = '';
  let cluster: Cluster | undefined;
  let redis: Redis | undefined;
  let store: AccountBaseStore;
  let backends: BackendDb[] = [];
  let fourth: CharmBackend | undefined;
  let failed = false;
  let userId = '';
  let userKey = '';
  let userPrivateKey: Buffer;

  const step = (name: string, fn: () => Promise<void>) =>
    it(name, async () => {
      try {
        await fn();
      } catch (err) {
        failed = true;
        throw err;
      }
    });
  const backend = (i: number) => cluster?.backends[i] ?? assert.fail(`no backend ${i}`);
  const cliAt = (b: CharmBackend, dataDir: string): CharmCli =>
    charmCli({
      charmBin: cluster?.charmBin ?? '',
      dataDir,
      sshPort: b.info.sshPort,
      httpPort: b.info.httpPort,
    });
  const rowsOf = (b: BackendDb, charmId: string): AccountUser | undefined => {
    const db = openBackendDb(b);
    try {
      return readAccount(db, charmId);
    } finally {
      db.close();
    }
  };
  const allRows = (b: BackendDb) => {
    const db = openBackendDb(b);
    try {
      return readAllAccounts(db);
    } finally {
      db.close();
    }
  };
  const sync = async (over = backends): Promise<SyncReport> => {
    const report = await syncAccounts({ backends: over.map(localBackendAccounts), store });
    assert.deepEqual(report.conflicts, [], 'no conflicts');
    return report;
  };

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), 'cring-accounts-real-'));
    cluster = await startCluster({ runDir, backendCount: 3, withGateway: false });
    redis = new Redis(cluster.redis.url, { maxRetriesPerRequest: 1 });
    store = createRedisAccountBaseStore(redis);
    backends = cluster.backends.map((b) => ({ name: b.info.name, dataDir: b.info.dataDir }));
  });

  after(async () => {
    await fourth?.process.stop();
    redis?.disconnect();
    await cluster?.stop();
    if (failed) console.log(`kept the run folder for inspection: ${runDir}`);
    else if (runDir) rmSync(runDir, { recursive: true, force: true });
  });

  step('copies a user created on backend 1 to backends 2 and 3, and the client works there', async () => {
    const clientDir = join(runDir, 'client-1');
    const onFirst = cliAt(backend(0), clientDir);
    userId = (await onFirst.run(['id'])).trim();
    assert.match(userId, /^[0-9a-f-]{36}$/);
    writeFileSync(join(runDir, 'hello.txt'), 'hello from backend 1');
    await onFirst.run(['fs', 'cp', join(runDir, 'hello.txt'), 'charm:/hello.txt']); // creates the encrypt key
    await onFirst.run(['kv', 'set', 'colour', 'blue']); // creates a named_seq row
    userPrivateKey = readFileSync(join(clientDir, '127.0.0.1', 'charm_ed25519'));
    userKey = keyText(readFileSync(join(clientDir, '127.0.0.1', 'charm_ed25519.pub'), 'utf8'));
    assert.deepEqual(await knowing(backends, userId), ['charm1']);

    const report = await sync();
    assert.deepEqual(report.untrusted, ['charm1', 'charm2', 'charm3'], 'first round: nothing recorded yet');
    const source = rowsOf(backends[0] as BackendDb, userId);
    assert.ok(source);
    assert.equal(source.keys.length, 1);
    assert.equal(source.keys[0]?.encryptKeys.length, 1);
    assert.ok(source.seqs.length > 0);
    for (const b of backends.slice(1))
      assert.deepEqual(rowsOf(b, userId), source, `${b.name} has identical rows`);
    assert.deepEqual(await knowing(backends, userId), ['charm1', 'charm2', 'charm3']);

    // The same client aimed straight at backend 3: same identity, same encrypt key (it decrypts backend 1's
    // file once the blob is there, and no new key is generated).
    const onThird = cliAt(backend(2), clientDir);
    assert.equal((await onThird.run(['id'])).trim(), userId);
    cpSync(join(backend(0).info.dataDir, 'files', userId), join(backend(2).info.dataDir, 'files', userId), {
      recursive: true,
    });
    assert.equal(await onThird.run(['fs', 'cat', 'charm:/hello.txt']), 'hello from backend 1');
    writeFileSync(join(runDir, 'second.txt'), 'written on backend 3');
    await onThird.run(['fs', 'cp', join(runDir, 'second.txt'), 'charm:/second.txt']);
    assert.equal(await onThird.run(['fs', 'cat', 'charm:/second.txt']), 'written on backend 3');
    assert.deepEqual(
      rowsOf(backends[2] as BackendDb, userId)?.keys[0]?.encryptKeys,
      source.keys[0]?.encryptKeys,
    );
    const again = await sync();
    assert.deepEqual(again.untrusted, []);
  });

  step('propagates a key linked over SSH (api-link), then its unlink, for good', async () => {
    const second = generateKeyPair();
    const secondKey = keyText(second.public);
    const link = await linkKeys(backend(0).info.sshPort, userPrivateKey, second.private);
    assert.equal(link.generatorStatus, 7);
    assert.deepEqual(link.requesterStatuses, [2, 10, 7]);
    await sync();
    for (const b of backends) {
      assert.deepEqual(
        rowsOf(b, userId)
          ?.keys.map((k) => k.publicKey)
          .sort(),
        [userKey, secondKey].sort(),
        b.name,
      );
    }
    // The linked key is the same account on backend 2 too.
    assert.equal(await sshCommand(backend(1).info.sshPort, second.private, 'id'), userId);

    assert.equal(await unlinkKey(backend(0).info.sshPort, userPrivateKey, secondKey), '');
    assert.deepEqual(
      rowsOf(backends[0] as BackendDb, userId)?.keys.map((k) => k.publicKey),
      [userKey],
    );
    const report = await sync();
    assert.equal(report.changed.find((c) => c.backend === 'charm2')?.keysDeleted, 1);
    for (let round = 0; round < 2; round++) {
      for (const b of backends)
        assert.deepEqual(
          rowsOf(b, userId)?.keys.map((k) => k.publicKey),
          [userKey],
          b.name,
        );
      await sync();
    }
  });

  step(
    'propagates a merge (api-link with a key of another user): the other user is gone everywhere',
    async () => {
      const otherDir = join(runDir, 'client-2');
      const other = cliAt(backend(0), otherDir);
      const otherId = (await other.run(['id'])).trim();
      const otherPrivateKey = readFileSync(join(otherDir, '127.0.0.1', 'charm_ed25519'));
      const otherKey = keyText(readFileSync(join(otherDir, '127.0.0.1', 'charm_ed25519.pub'), 'utf8'));
      await sync();
      assert.deepEqual(await knowing(backends, otherId), ['charm1', 'charm2', 'charm3']);

      const link = await linkKeys(backend(0).info.sshPort, userPrivateKey, otherPrivateKey);
      assert.equal(link.generatorStatus, 7);
      assert.deepEqual(await knowing(backends, otherId), ['charm2', 'charm3']);
      await sync();
      assert.deepEqual(await knowing(backends, otherId), []);
      for (const b of backends) {
        assert.deepEqual(
          rowsOf(b, userId)
            ?.keys.map((k) => k.publicKey)
            .sort(),
          [userKey, otherKey].sort(),
          b.name,
        );
      }
      assert.equal(await sshCommand(backend(2).info.sshPort, otherPrivateKey, 'id'), userId);
      await sync();
      assert.deepEqual(await knowing(backends, otherId), [], 'not resurrected');
    },
  );

  step(
    'runs rounds while the servers write (kv set, new users): no client error, no failed apply',
    async () => {
      const client = cliAt(backend(0), join(runDir, 'client-1'));
      const writes = (async () => {
        for (let i = 0; i < 8; i++) await client.run(['kv', 'set', `key${i}`, `value${i}`]);
        for (let i = 0; i < 3; i++) await cliAt(backend(0), join(runDir, `client-busy-${i}`)).run(['id']);
      })();
      let done = false;
      void writes.finally(() => {
        done = true;
      });
      const reports: SyncReport[] = [];
      while (!done) reports.push(await sync());
      await writes;
      reports.push(await sync());
      const failures = reports.flatMap((r) => r.skipped).filter((s) => !s.reason.includes('changed while'));
      assert.deepEqual(failures, []);
      const reference = allRows(backends[0] as BackendDb);
      for (const b of backends.slice(1)) assert.deepEqual(allRows(b), reference, b.name);
      for (const b of backends) {
        const log = readFileSync(join(runDir, 'logs', `${b.name}.log`), 'utf8');
        assert.doesNotMatch(log, /database is locked|SQLITE_BUSY/i, `${b.name} log`);
      }
    },
  );

  step('refills a wiped backend; while it is down nobody disappears anywhere', async () => {
    const before = allRows(backends[0] as BackendDb);
    const third = backend(2);
    await third.process.stop();
    rmSync(accountsDbPath(backends[2] as BackendDb));
    const whileDown = await sync();
    assert.deepEqual(
      whileDown.skipped.map((s) => s.backend),
      ['charm3'],
    );
    for (const b of backends.slice(0, 2)) assert.deepEqual(allRows(b), before, `${b.name} lost nothing`);

    await third.process.start(); // charm recreates an empty DB
    assert.equal(allRows(backends[2] as BackendDb).size, 0);
    const refill = await sync();
    assert.deepEqual(refill.untrusted, ['charm3']);
    assert.equal(refill.changed.find((c) => c.backend === 'charm3')?.usersAdded, before.size);
    for (const b of backends) assert.deepEqual(allRows(b), before, `${b.name} holds every account`);
    const clientOnThird = cliAt(third, join(runDir, 'client-1'));
    assert.equal((await clientOnThird.run(['id'])).trim(), userId);
    assert.equal(await clientOnThird.run(['fs', 'cat', 'charm:/second.txt']), 'written on backend 3');
    assert.deepEqual((await sync()).untrusted, []);
  });

  step('initBackendFrom prepares a 4th backend that knows the user as soon as it starts', async () => {
    fourth = await createCharmBackend({
      name: 'charm4',
      charmBin: cluster?.charmBin ?? '',
      runDir,
      publicUrl: cluster?.publicUrl ?? '',
    });
    const target = { name: 'charm4', dataDir: fourth.info.dataDir };
    initBackendFrom(backends[0] as BackendDb, target);
    assert.equal(statSync(join(target.dataDir, '.ssh')).mode & 0o777, 0o700);
    assert.equal(statSync(join(target.dataDir, SERVER_KEY_FILE)).mode & 0o777, 0o600);
    assert.throws(() => initBackendFrom(backends[0] as BackendDb, target), /already holds/);
    await fourth.process.start();

    const onFourth = cliAt(fourth, join(runDir, 'client-1'));
    assert.equal((await onFourth.run(['id'])).trim(), userId);
    writeFileSync(join(runDir, 'fourth.txt'), 'written on backend 4');
    await onFourth.run(['fs', 'cp', join(runDir, 'fourth.txt'), 'charm:/fourth.txt']);
    assert.equal(await onFourth.run(['fs', 'cat', 'charm:/fourth.txt']), 'written on backend 4');

    const all = [...backends, target];
    const report = await sync(all);
    assert.deepEqual(report.untrusted, ['charm4'], 'a fresh marker nobody recorded');
    for (const change of report.changed)
      assert.equal(change.usersAdded + change.keysAdded, 0, change.backend);
    for (const b of all) assert.deepEqual(allRows(b), allRows(backends[0] as BackendDb), b.name);
    assert.deepEqual((await sync(all)).untrusted, []);
  });
});
