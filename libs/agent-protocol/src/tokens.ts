// Agent tokens: EdDSA JWTs signed with the cluster key (whoever can sign them could mint user tokens anyway),
// audience exactly `cring-agent` (so neither a charm backend nor the gateway accepts one, and no user token
// reaches an agent), subject `agent:<backend>` (a token for one agent is refused by the others), 60 s lifetime,
// and a unique id (`jti`) per call, so the agent refuses a token it has seen (a replayed request).
import { type KeyObject, randomUUID } from 'node:crypto';
import { JwtError, mintCharmJwt, type ServerKey, verifyCharmJwt } from '@cring/charm';

export const AGENT_AUDIENCE = 'cring-agent';
const AGENT_TOKEN_TTL_SECONDS = 60;

const subjectFor = (backend: string) => `agent:${backend}`;

export function mintAgentToken(options: {
  key: ServerKey;
  issuer: string;
  backend: string;
  nowSeconds?: number;
}): string {
  return mintCharmJwt({
    key: options.key,
    issuer: options.issuer,
    charmId: subjectFor(options.backend),
    audience: [AGENT_AUDIENCE],
    ttlSeconds: AGENT_TOKEN_TTL_SECONDS,
    nowSeconds: options.nowSeconds,
    id: randomUUID(),
  });
}

/**
 * Throws JwtError unless the token is a live agent token for this backend, signed by the cluster key; returns its
 * id and expiry (the agent refuses an id it has seen before it expires).
 */
export function verifyAgentToken(
  token: string,
  options: { publicKey: KeyObject; kid: string; issuer: string; backend: string; nowSeconds?: number },
): { id: string; expiresAt: number } {
  const claims = verifyCharmJwt(token, {
    publicKey: options.publicKey,
    kid: options.kid,
    issuer: options.issuer,
    audience: AGENT_AUDIENCE,
    nowSeconds: options.nowSeconds,
  });
  if (claims.audiences.length !== 1) {
    throw new JwtError(
      'audience',
      `an agent token has exactly one audience, ${JSON.stringify(AGENT_AUDIENCE)}`,
    );
  }
  if (claims.charmId !== subjectFor(options.backend)) {
    throw new JwtError(
      'subject',
      `the token is for ${JSON.stringify(claims.charmId)}, not ${subjectFor(options.backend)}`,
    );
  }
  if (!claims.id) throw new JwtError('malformed', 'an agent token carries a unique id (jti)');
  return { id: claims.id, expiresAt: claims.expiresAt };
}
