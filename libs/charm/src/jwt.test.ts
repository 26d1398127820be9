import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { describe, it } from 'node:test';
import { bearerToken, JwtError, type JwtErrorReason, mintCharmJwt, verifyCharmJwt } from './jwt.ts';
import type { ServerKey } from './server-key.ts';

const ISSUER = 'http://charm.example:35354';
const CHARM_ID = '0b4c2b0e-7d59-4b6c-9d7f-2a8e5e3f1c11';
const NOW = 1_800_000_000;

function serverKey(kid = 'a'.repeat(64)): ServerKey {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicKey, kid };
}

const key = serverKey();

const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token with any header and claims, signed with ed25519 (or not at all). */
function forge(header: object, claims: object, signWith: KeyObject | undefined = key.privateKey): string {
  const input = `${encode(header)}.${encode(claims)}`;
  const signature = signWith ? sign(null, Buffer.from(input), signWith).toString('base64url') : '';
  return `${input}.${signature}`;
}

const goodHeader = { alg: 'EdDSA', kid: key.kid, typ: 'JWT' };
const goodClaims = { iss: ISSUER, sub: CHARM_ID, aud: ['charm'], exp: NOW + 60 };

function assertRefused(token: string, reason: JwtErrorReason, message?: RegExp, options = {}) {
  assert.throws(
    () =>
      verifyCharmJwt(token, {
        publicKey: key.publicKey,
        kid: key.kid,
        issuer: ISSUER,
        nowSeconds: NOW,
        ...options,
      }),
    (err: unknown) => {
      assert.ok(err instanceof JwtError, String(err));
      assert.equal(err.reason, reason, err.message);
      if (message) assert.match(err.message, message);
      if (token !== '') assert.ok(!err.message.includes(token), 'the message must not contain the token');
      return true;
    },
  );
}

describe('mintCharmJwt + verifyCharmJwt', () => {
  it('round-trips, with the header and claims the charm server writes', () => {
    const token = mintCharmJwt({ key, issuer: ISSUER, charmId: CHARM_ID, nowSeconds: NOW + 0.7 });
    const [header, claims] = token
      .split('.')
      .slice(0, 2)
      .map((part) => JSON.parse(Buffer.from(part, 'base64url').toString()));
    assert.equal(
      Buffer.from(token.split('.')[0] as string, 'base64url').toString(),
      `{"alg":"EdDSA","kid":"${key.kid}","typ":"JWT"}`,
    );
    assert.deepEqual(header, { alg: 'EdDSA', kid: key.kid, typ: 'JWT' });
    assert.deepEqual(claims, { iss: ISSUER, sub: CHARM_ID, aud: ['charm'], exp: NOW + 300 });
    assert.deepEqual(
      verifyCharmJwt(token, { publicKey: key.publicKey, kid: key.kid, issuer: ISSUER, nowSeconds: NOW }),
      {
        charmId: CHARM_ID,
        audiences: ['charm'],
        expiresAt: NOW + 300,
      },
    );
  });

  it('takes ttl and audience, and caps the ttl at one hour', () => {
    const token = mintCharmJwt({
      key,
      issuer: ISSUER,
      charmId: CHARM_ID,
      ttlSeconds: 3600,
      audience: ['charm', 'other'],
      nowSeconds: NOW,
    });
    assert.equal(
      verifyCharmJwt(token, { publicKey: key.publicKey, issuer: ISSUER, nowSeconds: NOW }).expiresAt,
      NOW + 3600,
    );
    assert.throws(
      () => mintCharmJwt({ key, issuer: ISSUER, charmId: CHARM_ID, ttlSeconds: 3601 }),
      RangeError,
    );
    assert.throws(() => mintCharmJwt({ key, issuer: ISSUER, charmId: CHARM_ID, ttlSeconds: 0 }), RangeError);
    assert.throws(() => mintCharmJwt({ key, issuer: ISSUER, charmId: '' }), RangeError);
  });
});

describe('verifyCharmJwt', () => {
  it('accepts an audience given as a string, and a token without kid', () => {
    const token = forge({ alg: 'EdDSA' }, { ...goodClaims, aud: 'charm' });
    assert.equal(
      verifyCharmJwt(token, { publicKey: key.publicKey, kid: key.kid, issuer: ISSUER, nowSeconds: NOW })
        .charmId,
      CHARM_ID,
    );
  });

  it('refuses alg none', () => {
    assertRefused(forge({ alg: 'none', typ: 'JWT' }, goodClaims, undefined), 'algorithm', /"none".*EdDSA/);
    assertRefused(forge({ typ: 'JWT' }, goodClaims), 'algorithm');
  });

  it('refuses HS256 signed with the public key as the secret', () => {
    const input = `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(goodClaims)}`;
    const secret = key.publicKey.export({ format: 'der', type: 'spki' });
    const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    assertRefused(token, 'algorithm', /"HS256"/);
    assertRefused(forge({ alg: 'eddsa' }, goodClaims), 'algorithm');
  });

  it('refuses a token signed with another key', () => {
    const other = serverKey(key.kid);
    assertRefused(forge(goodHeader, goodClaims, other.privateKey), 'signature', /charm_server_ed25519/);
  });

  it('refuses a tampered payload or signature', () => {
    const token = forge(goodHeader, goodClaims);
    const [header, , signature] = token.split('.') as [string, string, string];
    assertRefused(`${header}.${encode({ ...goodClaims, sub: 'someone-else' })}.${signature}`, 'signature');
    const flipped = Buffer.from(signature, 'base64url');
    flipped[0] = (flipped[0] as number) ^ 1;
    assertRefused(`${header}.${token.split('.')[1]}.${flipped.toString('base64url')}`, 'signature');
    assertRefused(`${header}.${token.split('.')[1]}.${signature.slice(0, 20)}`, 'signature');
  });

  it('refuses a wrong issuer, exactly compared', () => {
    assertRefused(
      forge(goodHeader, { ...goodClaims, iss: 'http://evil.example' }),
      'issuer',
      /CHARM_SERVER_PUBLIC_URL/,
    );
    assertRefused(forge(goodHeader, { ...goodClaims, iss: `${ISSUER}/` }), 'issuer');
    const { iss: _iss, ...noIssuer } = goodClaims;
    assertRefused(forge(goodHeader, noIssuer), 'issuer');
  });

  it('refuses a wrong or missing audience', () => {
    assertRefused(forge(goodHeader, { ...goodClaims, aud: ['other'] }), 'audience', /"charm"/);
    assertRefused(forge(goodHeader, { ...goodClaims, aud: 'charmed' }), 'audience');
    assertRefused(forge(goodHeader, { ...goodClaims, aud: [1] }), 'audience');
    const { aud: _aud, ...noAudience } = goodClaims;
    assertRefused(forge(goodHeader, noAudience), 'audience');
    assertRefused(forge(goodHeader, goodClaims), 'audience', /"mine"/, { audience: 'mine' });
  });

  it('refuses an expired token with zero leeway, and one without exp', () => {
    assertRefused(forge(goodHeader, { ...goodClaims, exp: NOW - 1 }), 'expired', /get a new token/);
    assertRefused(forge(goodHeader, { ...goodClaims, exp: NOW }), 'expired');
    assertRefused(forge(goodHeader, { ...goodClaims, exp: String(NOW + 60) }), 'expired', /no expiry/);
    const { exp: _exp, ...noExpiry } = goodClaims;
    assertRefused(forge(goodHeader, noExpiry), 'expired', /no expiry/);
  });

  it('refuses a token that is not valid yet, as the server does', () => {
    assertRefused(forge(goodHeader, { ...goodClaims, nbf: NOW + 10 }), 'expired', /not valid before.*clocks/);
    assertRefused(forge(goodHeader, { ...goodClaims, iat: NOW + 10 }), 'expired', /not valid before/);
  });

  it('refuses a token without subject', () => {
    const { sub: _sub, ...noSubject } = goodClaims;
    assertRefused(forge(goodHeader, noSubject), 'subject', /charm_id/);
    assertRefused(forge(goodHeader, { ...goodClaims, sub: '' }), 'subject');
    assertRefused(forge(goodHeader, { ...goodClaims, sub: 42 }), 'subject');
  });

  it('refuses a token naming another key id', () => {
    assertRefused(forge({ ...goodHeader, kid: 'b'.repeat(64) }, goodClaims), 'kid', /share one server key/);
    assertRefused(forge({ ...goodHeader, kid: 7 }, goodClaims), 'malformed');
  });

  it('refuses malformed tokens', () => {
    assertRefused('', 'malformed');
    assertRefused('a.b', 'malformed');
    assertRefused('a.b.c.d', 'malformed');
    assertRefused('a+b.c.d', 'malformed');
    assertRefused(
      `${Buffer.from('not json').toString('base64url')}.e30.`,
      'malformed',
      /header is not base64url-encoded JSON/,
    );
    assertRefused(`${encode([1])}.e30.`, 'malformed', /not a JSON object/);
    assertRefused(forge({ ...goodHeader, crit: ['exp'] }, goodClaims), 'malformed');
    const input = `${encode(goodHeader)}.${Buffer.from('nope').toString('base64url')}`;
    assertRefused(
      `${input}.${sign(null, Buffer.from(input), key.privateKey).toString('base64url')}`,
      'malformed',
    );
  });

  it('checks the algorithm before the signature', () => {
    // A wrong-algorithm token with a garbage signature reports the algorithm, proving no signature work was done.
    assertRefused(`${encode({ alg: 'RS256' })}.${encode(goodClaims)}.AAAA`, 'algorithm');
  });

  it('needs an ed25519 public key', () => {
    const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    assert.throws(
      () => verifyCharmJwt(forge(goodHeader, goodClaims), { publicKey, issuer: ISSUER }),
      TypeError,
    );
  });
});

describe('bearerToken', () => {
  it('takes the token of a bearer header, scheme case-insensitive', () => {
    assert.equal(bearerToken('bearer abc.def.ghi'), 'abc.def.ghi');
    assert.equal(bearerToken('Bearer abc'), 'abc');
    assert.equal(bearerToken('BEARER   abc  '), 'abc');
  });

  it('says whether the header is missing or malformed', () => {
    for (const header of [undefined, '', '   ']) {
      assert.throws(
        () => bearerToken(header),
        (err: JwtError) => err.reason === 'missing',
      );
    }
    for (const header of ['abc', 'Basic abc', 'bearer', 'bearer a b', 'Bearer: abc']) {
      assert.throws(
        () => bearerToken(header),
        (err: JwtError) => err.reason === 'malformed' && !err.message.includes('abc'),
      );
    }
  });
});
