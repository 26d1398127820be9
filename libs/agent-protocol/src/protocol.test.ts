import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import type { AccountUser } from '@cring/accounts';
import { JwtError, mintCharmJwt, type ServerKey } from '@cring/charm';
import {
  decodeApplyPlan,
  decodeApplyResult,
  decodeSnapshot,
  encodeApplyPlan,
  encodeApplyResult,
  encodeSnapshot,
  PayloadError,
} from './payloads.ts';
import { mintAgentToken, verifyAgentToken } from './tokens.ts';

const key = (): ServerKey => {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, kid: randomBytes(32).toString('hex') };
};
const ISSUER = 'http://gw:35354';
const user: AccountUser = {
  charmId: '11111111-1111-4111-8111-111111111111',
  name: 'alice',
  email: null,
  bio: null,
  createdAt: '2024-01-01 00:00:00',
  keys: [
    {
      publicKey: 'ssh-ed25519 AAAA',
      createdAt: 1700000000,
      encryptKeys: [{ globalId: 'g', encryptedKey: 'e', createdAt: null }],
    },
  ],
  seqs: [{ name: 'kv', seq: 3 }],
};

describe('agent tokens', () => {
  const cluster = key();
  const verify = (token: string, backend = 'charm1') =>
    verifyAgentToken(token, { publicKey: cluster.publicKey, kid: cluster.kid, issuer: ISSUER, backend });

  it('a token minted for one agent is accepted by it only', () => {
    const token = mintAgentToken({ key: cluster, issuer: ISSUER, backend: 'charm1' });
    const second = mintAgentToken({ key: cluster, issuer: ISSUER, backend: 'charm1' });
    assert.notEqual(
      verify(token).id,
      verify(second).id,
      'every call gets its own id, so replays can be told apart',
    );
    assert.throws(
      () => verify(token, 'charm2'),
      (err: unknown) => err instanceof JwtError && err.reason === 'subject',
    );
  });

  it('user tokens, tokens for several audiences and other keys are refused', () => {
    const reasons = (token: string) => {
      try {
        verify(token);
        return 'accepted';
      } catch (err) {
        return (err as JwtError).reason;
      }
    };
    assert.equal(
      reasons(mintCharmJwt({ key: cluster, issuer: ISSUER, charmId: 'agent:charm1' })),
      'audience',
    );
    assert.equal(
      reasons(
        mintCharmJwt({
          key: cluster,
          issuer: ISSUER,
          charmId: 'agent:charm1',
          audience: ['cring-agent', 'charm'],
        }),
      ),
      'audience',
    );
    assert.equal(reasons(mintAgentToken({ key: key(), issuer: ISSUER, backend: 'charm1' })), 'kid');
    assert.equal(
      reasons(mintAgentToken({ key: cluster, issuer: 'http://evil', backend: 'charm1' })),
      'issuer',
    );
    const old = mintAgentToken({
      key: cluster,
      issuer: ISSUER,
      backend: 'charm1',
      nowSeconds: Date.now() / 1000 - 61,
    });
    assert.equal(reasons(old), 'expired', 'lives 60 s');
  });
});

describe('agent payloads', () => {
  it('round-trip snapshots, plans and results (Maps and Sets as entries)', () => {
    const snapshot = decodeSnapshot(
      JSON.parse(JSON.stringify(encodeSnapshot({ marker: 'm', users: new Map([[user.charmId, user]]) }))),
    );
    assert.deepEqual(snapshot.users.get(user.charmId), user);
    const plan = {
      backend: 'charm1',
      targets: new Map<string, AccountUser | null>([
        [user.charmId, user],
        ['gone', null],
      ]),
      snapshot: new Map([[user.charmId, user]]),
      expectedMarker: null,
      newMarker: 'n',
      now: new Date('2026-01-01T00:00:00.000Z'),
    };
    assert.deepEqual(decodeApplyPlan(JSON.parse(JSON.stringify(encodeApplyPlan(plan)))), plan);
    const result = {
      changes: {
        usersAdded: 1,
        usersDeleted: 0,
        keysAdded: 1,
        keysDeleted: 0,
        encryptKeysAdded: 0,
        namesSet: 0,
        seqsRaised: 0,
      },
      deferred: [],
      reached: new Set([user.charmId]),
      partial: new Map<string, AccountUser | undefined>([['other', undefined]]),
      markerWritten: true,
      conflicts: ['x'],
    };
    assert.deepEqual(decodeApplyResult(JSON.parse(JSON.stringify(encodeApplyResult(result)))), result);
  });

  it('refuses what does not parse, saying where', () => {
    assert.throws(
      () => decodeSnapshot({ marker: 1, users: [] }),
      (err: unknown) => err instanceof PayloadError && /marker/.test(err.message),
    );
    assert.throws(
      () =>
        decodeApplyPlan({
          backend: 'b',
          targets: [['x', { charmId: 'x' }]],
          snapshot: [],
          expectedMarker: null,
          now: 'yesterday',
        }),
      PayloadError,
    );
  });
});
