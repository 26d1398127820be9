/**
 * Charm JWTs: EdDSA (ed25519) compact JWS signed with the shared server key, claims `iss`, `sub` (the charm_id),
 * `aud` and `exp`. Verification is at least as strict as the charm server's (go-jwt-middleware + go-jose), so a
 * token accepted here is accepted by every backend that shares the key and issuer.
 */
import { type KeyObject, sign, verify } from 'node:crypto';
import type { ServerKey } from './server-key.ts';

export type JwtErrorReason =
  | 'missing'
  | 'malformed'
  | 'algorithm'
  | 'signature'
  | 'issuer'
  | 'audience'
  | 'expired'
  | 'kid'
  | 'subject';

/** Why a token was refused. Messages never contain the token. */
export class JwtError extends Error {
  readonly reason: JwtErrorReason;

  constructor(reason: JwtErrorReason, message: string) {
    super(message);
    this.name = 'JwtError';
    this.reason = reason;
  }
}

const DEFAULT_AUDIENCE = 'charm';
const DEFAULT_TOKEN_TTL_SECONDS = 300;
// The charm server issues tokens for 1 h; a longer-lived token would outlive anything charm itself hands out.
const MAX_TOKEN_TTL_SECONDS = 3600;

const BASE64URL = /^[A-Za-z0-9_-]*$/;
const ED25519_SIGNATURE_BYTES = 64;

/** The token of an `Authorization: bearer <jwt>` header (scheme case-insensitive, as the server parses it). */
export function bearerToken(authorization: string | undefined): string {
  const value = authorization?.trim() ?? '';
  if (value === '') {
    throw new JwtError('missing', 'no Authorization header: send `Authorization: bearer <jwt>`');
  }
  const parts = value.split(/\s+/);
  if (parts.length !== 2 || parts[0]?.toLowerCase() !== 'bearer') {
    throw new JwtError('malformed', 'the Authorization header is not of the form `bearer <jwt>`');
  }
  return parts[1] as string;
}

export interface VerifyCharmJwtOptions {
  publicKey: KeyObject;
  /** When given, a token whose header names another kid is refused (a token without kid is still checked). */
  kid?: string;
  issuer: string;
  audience?: string;
  nowSeconds?: number;
}

/** Verifies a charm token and returns its subject. Throws JwtError saying what is wrong. */
export function verifyCharmJwt(
  token: string,
  options: VerifyCharmJwtOptions,
): { charmId: string; expiresAt: number; audiences: string[]; id?: string } {
  if (options.publicKey.asymmetricKeyType !== 'ed25519') {
    throw new TypeError('verifyCharmJwt needs an ed25519 public key');
  }
  const parts = token.split('.');
  if (parts.length !== 3 || !parts.every((part) => BASE64URL.test(part))) {
    throw new JwtError(
      'malformed',
      'the token is not a compact JWT (three base64url parts separated by dots)',
    );
  }
  const [encodedHeader, encodedClaims, encodedSignature] = parts as [string, string, string];
  const header = decodeJsonObject(encodedHeader, 'header');

  // Refuse every other algorithm before touching the signature: `none` and HS256-with-the-public-key tricks.
  if (header.alg !== 'EdDSA') {
    throw new JwtError(
      'algorithm',
      `the token is signed with ${quoted(header.alg)}; charm tokens must use EdDSA (the server's ed25519 key)`,
    );
  }
  if (header.crit !== undefined) {
    throw new JwtError('malformed', 'the token header has "crit" extensions, which charm tokens never use');
  }
  if (header.kid !== undefined && typeof header.kid !== 'string') {
    throw new JwtError('malformed', 'the token header has a kid that is not a string');
  }
  if (options.kid !== undefined && header.kid !== undefined && header.kid !== options.kid) {
    throw new JwtError(
      'kid',
      `the token was signed with key ${quoted(header.kid)}, not this cluster's key ${options.kid}: every backend must share one server key`,
    );
  }

  const signature = Buffer.from(encodedSignature, 'base64url');
  const signed = Buffer.from(`${encodedHeader}.${encodedClaims}`, 'latin1');
  if (signature.length !== ED25519_SIGNATURE_BYTES || !verify(null, signed, options.publicKey, signature)) {
    throw new JwtError(
      'signature',
      "the token's signature does not match the cluster's server key: it was signed by another key (do all backends share DATA_DIR/.ssh/charm_server_ed25519?)",
    );
  }

  const claims = decodeJsonObject(encodedClaims, 'claims');
  if (claims.iss !== options.issuer) {
    throw new JwtError(
      'issuer',
      `the token was issued by ${quoted(claims.iss)}, expected ${JSON.stringify(options.issuer)}: every backend must have the same CHARM_SERVER_PUBLIC_URL`,
    );
  }

  const audience = options.audience ?? DEFAULT_AUDIENCE;
  const audiences = typeof claims.aud === 'string' ? [claims.aud] : claims.aud;
  if (!Array.isArray(audiences) || !audiences.every((aud) => typeof aud === 'string')) {
    throw new JwtError(
      'audience',
      `the token has no valid audience (aud), expected ${JSON.stringify(audience)}`,
    );
  }
  if (!audiences.includes(audience)) {
    throw new JwtError('audience', `the token is not meant for audience ${JSON.stringify(audience)}`);
  }

  const now = options.nowSeconds ?? Date.now() / 1000;
  const expiresAt = claims.exp;
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) {
    throw new JwtError('expired', 'the token has no expiry (exp): get a token from charm (`charm jwt`)');
  }
  if (expiresAt <= now) {
    throw new JwtError(
      'expired',
      `the token expired at ${isoSeconds(expiresAt)}: get a new token (charm re-authenticates on its next command)`,
    );
  }
  // The server also refuses tokens that are not valid yet; that only happens when clocks disagree.
  for (const claim of ['nbf', 'iat'] as const) {
    const value = claims[claim];
    if (value === undefined) continue;
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      throw new JwtError('malformed', `the token's ${claim} is not a number`);
    }
    if (value > now) {
      throw new JwtError(
        'expired',
        `the token is not valid before ${isoSeconds(value)} (${claim}): check that the clocks of the servers agree`,
      );
    }
  }

  if (typeof claims.sub !== 'string' || claims.sub === '') {
    throw new JwtError('subject', 'the token has no subject (sub), which must be the charm_id of the user');
  }
  return {
    charmId: claims.sub,
    expiresAt,
    audiences: audiences as string[],
    ...(typeof claims.jti === 'string' ? { id: claims.jti } : {}),
  };
}

export interface MintCharmJwtOptions {
  key: ServerKey;
  issuer: string;
  charmId: string;
  ttlSeconds?: number;
  audience?: string[];
  nowSeconds?: number;
  /** A unique token id (`jti`), for receivers that refuse a token seen before. */
  id?: string;
}

/** Mints a token as the charm server does (same header, claims and key), for background work on a user's files. */
export function mintCharmJwt(options: MintCharmJwtOptions): string {
  const ttlSeconds = options.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0 || ttlSeconds > MAX_TOKEN_TTL_SECONDS) {
    throw new RangeError(`ttlSeconds must be a whole number of seconds from 1 to ${MAX_TOKEN_TTL_SECONDS}`);
  }
  if (options.charmId === '') throw new RangeError('charmId is empty');
  if (options.issuer === '') throw new RangeError('issuer is empty');
  const audience = options.audience ?? [DEFAULT_AUDIENCE];
  if (audience.length === 0) throw new RangeError('audience is empty');
  const now = Math.floor(options.nowSeconds ?? Date.now() / 1000);
  const header = { alg: 'EdDSA', kid: options.key.kid, typ: 'JWT' };
  const claims = {
    iss: options.issuer,
    sub: options.charmId,
    aud: audience,
    exp: now + ttlSeconds,
    ...(options.id ? { jti: options.id } : {}),
  };
  const signingInput = `${encodeJson(header)}.${encodeJson(claims)}`;
  const signature = sign(null, Buffer.from(signingInput, 'latin1'), options.key.privateKey);
  return `${signingInput}.${signature.toString('base64url')}`;
}

function encodeJson(value: object): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

function decodeJsonObject(encoded: string, what: 'header' | 'claims'): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    throw new JwtError('malformed', `the token's ${what} is not base64url-encoded JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new JwtError('malformed', `the token's ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

// Claims are attacker-controlled: show them JSON-quoted and short.
function quoted(value: unknown): string {
  const json = JSON.stringify(value ?? null);
  return json.length > 80 ? `${json.slice(0, 77)}...` : json;
}

function isoSeconds(seconds: number): string {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}
