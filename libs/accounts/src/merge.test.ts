import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccountUser } from './account-state.ts';
import { type BackendAccountsState, type BaseEntry, mergeAccountStates } from './merge.ts';
import { user } from './test-charm-db.ts';

const K1 = 'ssh-ed25519 AAAAkey1';
const K2 = 'ssh-ed25519 AAAAkey2';
const K3 = 'ssh-ed25519 AAAAkey3';
const U1 = '11111111-1111-4111-8111-111111111111';
const U2 = '22222222-2222-4222-8222-222222222222';

const backend = (name: string, users: AccountUser[], trusted = true): BackendAccountsState => ({
  name,
  trusted,
  users: new Map(users.map((u) => [u.charmId, u])),
});
const baseOf = (entries: Record<string, BaseEntry>) => new Map(Object.entries(entries));
const keysOf = (u: AccountUser | null | undefined) => u?.keys.map((k) => k.publicKey);
const ek = (globalId: string, createdAt: string) => ({ globalId, encryptedKey: `ek-${globalId}`, createdAt });
const withEks = (u: AccountUser, publicKey: string, eks: ReturnType<typeof ek>[]): AccountUser => ({
  ...u,
  keys: u.keys.map((k) => (k.publicKey === publicKey ? { ...k, encryptKeys: eks } : k)),
});
const merge = (base: Map<string, BaseEntry>, backends: BackendAccountsState[], charmIds = [U1, U2]) =>
  mergeAccountStates({ charmIds, base, backends });

describe('mergeAccountStates', () => {
  it('takes a new user from the one backend that has it', () => {
    const u1 = withEks(user(U1, [K1]), K1, [ek('g1', '2024-01-01 00:00:01')]);
    const result = merge(baseOf({}), [backend('b1', [u1]), backend('b2', []), backend('b3', [])]);
    assert.deepEqual(result.users.get(U1), u1);
    assert.equal(result.users.has(U2), false, 'a user known nowhere is not in the result');
    assert.deepEqual(result.conflicts, []);
  });

  it('adds a key linked on the primary', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1]) } });
    const result = merge(base, [backend('b1', [user(U1, [K1, K2])]), backend('b2', [user(U1, [K1])])]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1, K2]);
  });

  it('keeps a key that a lagging trusted backend never got (absent there and from the base: no removal)', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1]) } });
    const result = merge(base, [backend('b1', [user(U1, [K1])]), backend('b2', [user(U1, [K1, K2])])]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1, K2]);
  });

  it('removes a key unlinked on the primary everywhere; a lagging or untrusted copy does not bring it back', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1, K2]) } });
    const result = merge(base, [
      backend('b1', [user(U1, [K1])]),
      backend('b2', [user(U1, [K1, K2])]),
      backend('b3', [user(U1, [K1, K2])], false),
    ]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1]);
    assert.deepEqual(result.removedKeys.get(U1), [K2]);

    // Next round: b2 was not reached and still has K2 (a ref says so); an untrusted copy has it too.
    const next = merge(
      baseOf({ [U1]: { user: user(U1, [K1]), removedKeys: [K2], refs: { b2: user(U1, [K1, K2]) } } }),
      [
        backend('b1', [user(U1, [K1])]),
        backend('b2', [user(U1, [K1, K2])]),
        backend('b3', [user(U1, [K1, K2])], false),
      ],
    );
    assert.deepEqual(keysOf(next.users.get(U1)), [K1]);
  });

  it('lets a trusted backend link an unlinked key again (tombstone cleared)', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1]), removedKeys: [K2] } });
    const result = merge(base, [backend('b1', [user(U1, [K1, K2])]), backend('b2', [user(U1, [K1])])]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1, K2]);
    assert.deepEqual(result.removedKeys.get(U1), []);
  });

  it('deletes the user everywhere after the last-key unlink', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1]) } });
    const result = merge(base, [
      backend('b1', []),
      backend('b2', [user(U1, [K1])]),
      backend('b3', [user(U1, [K1])]),
    ]);
    assert.equal(result.users.get(U1), null);
    // The tombstone stays: a backend that still has the user (stale, or untrusted) never revives it.
    const next = merge(baseOf({ [U1]: { user: null } }), [
      backend('b2', [user(U1, [K1, K3])]),
      backend('b3', [user(U1, [K1])], false),
    ]);
    assert.equal(next.users.get(U1), null);
  });

  it('merges U2 into U1: the key (with its encrypt keys) moves, U2 is deleted everywhere', () => {
    const u1 = withEks(user(U1, [K1]), K1, [ek('g1', '2024-01-01 00:00:01')]);
    const u2 = withEks(user(U2, [K2], { seqs: [{ name: 's', seq: 4 }] }), K2, [
      ek('g2', '2024-01-02 00:00:00'),
    ]);
    const base = baseOf({ [U1]: { user: u1 }, [U2]: { user: u2 } });
    const mergedOnPrimary: AccountUser = { ...u1, keys: [...u1.keys, ...u2.keys] };
    const result = merge(base, [
      backend('b1', [mergedOnPrimary]),
      backend('b2', [u1, u2]),
      backend('b3', [u1, u2]),
    ]);
    assert.equal(result.users.get(U2), null);
    const merged = result.users.get(U1);
    assert.deepEqual(keysOf(merged), [K1, K2]);
    assert.deepEqual(
      merged?.keys.find((k) => k.publicKey === K2)?.encryptKeys.map((e) => e.globalId),
      ['g2'],
    );
    assert.deepEqual(result.conflicts, []);
  });

  it('treats a wiped backend (untrusted) as a source of additions only, never of removals', () => {
    const u1 = user(U1, [K1, K2], { seqs: [{ name: 's', seq: 3 }] });
    const base = baseOf({ [U1]: { user: u1 } });
    const result = merge(base, [backend('b1', [u1]), backend('b2', [u1]), backend('b3', [], false)]);
    assert.deepEqual(result.users.get(U1), u1);
  });

  it('takes users from a new (untrusted) backend, except tombstoned ones', () => {
    const base = baseOf({ [U2]: { user: null } });
    const result = merge(base, [backend('b1', []), backend('b4', [user(U1, [K1]), user(U2, [K2])], false)]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1]);
    assert.equal(result.users.get(U2), null);
  });

  it('adds an encrypt key one backend missed, keeping created_at and the tie order', () => {
    const eks = [
      ek('g1', '2024-01-01 00:00:01'),
      ek('g0', '2024-01-01 00:00:01'),
      ek('g2', '2024-01-03 00:00:00'),
    ];
    const base = baseOf({ [U1]: { user: withEks(user(U1, [K1]), K1, eks.slice(0, 2)) } });
    const result = merge(base, [
      backend('b1', [withEks(user(U1, [K1]), K1, eks)]),
      backend('b2', [withEks(user(U1, [K1]), K1, [eks[0] ?? ek('x', 'x')])]),
    ]);
    assert.deepEqual(result.users.get(U1)?.keys[0]?.encryptKeys, eks);
  });

  it('reports an encrypt key whose created_at differs, keeping the base value', () => {
    const base = baseOf({ [U1]: { user: withEks(user(U1, [K1]), K1, [ek('g1', '2024-01-01 00:00:01')]) } });
    const result = merge(base, [
      backend('b1', [withEks(user(U1, [K1]), K1, [ek('g1', '2024-05-05 00:00:00')])]),
    ]);
    assert.equal(result.users.get(U1)?.keys[0]?.encryptKeys[0]?.createdAt, '2024-01-01 00:00:01');
    assert.equal(result.conflicts.length, 1);
  });

  it('takes the highest seq seen anywhere', () => {
    const seqs = (seq: number) => ({ seqs: [{ name: 'kv', seq }] });
    const base = baseOf({ [U1]: { user: user(U1, [K1], seqs(3)) } });
    const result = merge(base, [
      backend('b1', [user(U1, [K1], seqs(5))]),
      backend('b2', [user(U1, [K1], seqs(7))]),
      backend(
        'b3',
        [
          user(U1, [K1], {
            seqs: [
              { name: 'kv', seq: 2 },
              { name: 'other', seq: 1 },
            ],
          }),
        ],
        false,
      ),
    ]);
    assert.deepEqual(result.users.get(U1)?.seqs, [
      { name: 'kv', seq: 7 },
      { name: 'other', seq: 1 },
    ]);
  });

  it('takes a name change from any trusted backend; the first backend wins a disagreement', () => {
    const base = baseOf({ [U1]: { user: user(U1, [K1], { name: 'old' }) } });
    const one = merge(base, [
      backend('b1', [user(U1, [K1], { name: 'old' })]),
      backend('b2', [user(U1, [K1], { name: 'alice' })]),
    ]);
    assert.equal(one.users.get(U1)?.name, 'alice');
    const two = merge(base, [
      backend('b1', [user(U1, [K1], { name: 'bob' })]),
      backend('b2', [user(U1, [K1], { name: 'alice' })]),
    ]);
    assert.equal(two.users.get(U1)?.name, 'bob');
    assert.equal(two.conflicts.length, 1);
    // An untrusted backend's name for a known user is not a change.
    const three = merge(base, [
      backend('b1', [user(U1, [K1], { name: 'old' })]),
      backend('b3', [user(U1, [K1], { name: 'x' })], false),
    ]);
    assert.equal(three.users.get(U1)?.name, 'old');
  });

  it('keeps a taken name (case-insensitive, like charm) for its holder and reports the conflict', () => {
    const base = baseOf({
      [U1]: { user: user(U1, [K1], { name: 'one' }) },
      [U2]: { user: user(U2, [K2], { name: 'Bob' }) },
    });
    const result = merge(base, [
      backend('b1', [user(U1, [K1], { name: 'bob' }), user(U2, [K2], { name: 'Bob' })]),
    ]);
    assert.equal(result.users.get(U2)?.name, 'Bob');
    assert.equal(result.users.get(U1)?.name, 'one');
    assert.equal(result.conflicts.length, 1);
  });

  it('diffs a backend that missed the last round against its ref, not the base', () => {
    // Round N removed K2 (unlinked on b1) while b2 was unreachable; b2 then linked K3 on its own.
    const base = baseOf({
      [U1]: { user: user(U1, [K1]), removedKeys: [K2], refs: { b2: user(U1, [K1, K2]) } },
    });
    const result = merge(base, [backend('b1', [user(U1, [K1])]), backend('b2', [user(U1, [K1, K2, K3])])]);
    assert.deepEqual(keysOf(result.users.get(U1)), [K1, K3]);
    // A ref of null: the backend lacked the user, so lacking it still is no deletion.
    const created = merge(baseOf({ [U1]: { user: user(U1, [K1]), refs: { b2: null } } }), [
      backend('b1', [user(U1, [K1])]),
      backend('b2', []),
    ]);
    assert.deepEqual(keysOf(created.users.get(U1)), [K1]);
  });

  it('gives a public key claimed by two new users (a fork) to the first backend’s user', () => {
    const result = merge(baseOf({}), [backend('b1', [user(U2, [K1])]), backend('b2', [user(U1, [K1])])]);
    assert.deepEqual(keysOf(result.users.get(U2)), [K1]);
    assert.deepEqual(keysOf(result.users.get(U1)), []);
    assert.equal(result.conflicts.length, 1);
  });

  it('leaves users outside charmIds alone', () => {
    const result = merge(baseOf({}), [backend('b1', [user(U1, [K1]), user(U2, [K2])])], [U1]);
    assert.deepEqual([...result.users.keys()], [U1]);
  });
});
