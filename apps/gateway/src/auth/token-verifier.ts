import { hash, type KeyObject } from 'node:crypto';
import {
  type Backend,
  bearerToken,
  JwtError,
  loadServerKey,
  parseOpenSshPublicKey,
  publicKeyFromJwks,
  verifyCharmJwt,
} from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import { backendUrl } from '../backends/backend-url.ts';
import { UnauthorizedError } from '../errors.ts';

const MAX_CACHED_TOKENS = 10_000;

export interface TokenVerifier {
  /** The charm_id of a valid token; throws UnauthorizedError (401) otherwise. Never logs the token. */
  verify(authorization: string | undefined): { charmId: string };
  /** Resolves once the cluster key's kid is known (at once with the key file). */
  ready(): Promise<void>;
  close(): void;
}

/** The key every token must be signed with, from configuration; the kid is known when the key file is. */
export interface TrustedClusterKey {
  publicKey: KeyObject;
  kid?: string;
}

/**
 * The cluster key from configuration: the key file (CRING_SERVER_KEY_FILE) or the public key
 * (CRING_SERVER_PUBLIC_KEY); when both are set they must be the same key.
 */
export function trustedClusterKey(options: {
  serverKeyFile?: string;
  serverPublicKey?: string;
}): TrustedClusterKey {
  const fromFile = options.serverKeyFile ? loadServerKey(options.serverKeyFile) : undefined;
  const configured = options.serverPublicKey ? parseOpenSshPublicKey(options.serverPublicKey) : undefined;
  if (fromFile && configured && !fromFile.publicKey.equals(configured)) {
    throw new Error('CRING_SERVER_PUBLIC_KEY is not the public key of CRING_SERVER_KEY_FILE');
  }
  const publicKey = fromFile?.publicKey ?? configured;
  if (!publicKey) throw new Error('set CRING_SERVER_KEY_FILE or CRING_SERVER_PUBLIC_KEY (the cluster key)');
  return { publicKey, kid: fromFile?.kid };
}

/**
 * Verifies users' JWTs with the configured cluster key, never with a key a backend or a token names. Without the
 * key file the kid is not known; it is taken from a backend's `/v1/public/jwks` only when that JWKS publishes
 * the configured key (plain HTTP may be tampered with; a backend with another key is misconfigured). Until then
 * tokens are checked by signature with the configured key, the kid unchecked.
 */
export function createTokenVerifier(options: {
  issuer: string;
  clusterKey: TrustedClusterKey;
  backends: readonly Backend[];
  logger: Logger;
  retryMs?: number;
}): TokenVerifier {
  const key = { ...options.clusterKey };
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let markReady: () => void = () => {};
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  if (key.kid) {
    markReady();
  } else {
    const fetchKid = async () => {
      for (const backend of options.backends) {
        try {
          const response = await fetch(backendUrl(backend, '/v1/public/jwks'), {
            signal: AbortSignal.timeout(5000),
          });
          if (!response.ok) throw new Error(`status ${response.status}`);
          const published = publicKeyFromJwks(await response.json());
          if (!published.publicKey.equals(key.publicKey)) {
            options.logger.error(
              { backend: backend.name, kid: published.kid },
              'this backend publishes a key that is not the configured cluster key: ignored',
            );
            continue;
          }
          key.kid = published.kid;
          options.logger.info(
            { backend: backend.name, kid: published.kid },
            'cluster key id from the backend JWKS',
          );
          markReady();
          return;
        } catch (err) {
          options.logger.warn({ backend: backend.name, err }, "could not read this backend's JWKS");
        }
      }
      if (!closed) timer = setTimeout(fetchKid, options.retryMs ?? 2000);
    };
    void fetchKid();
  }

  // Verified tokens, until they expire: the stock client sends the same token for every request of a command,
  // and an Ed25519 check per request was a measurable share of small requests' CPU. Keyed by the sha256 of the
  // Authorization header, so no token is kept in memory; only the exact header verified before hits.
  const verified = new Map<string, { charmId: string; expiresAt: number }>();
  const cacheKey = (authorization: string) => hash('sha256', authorization, 'base64'); // one call, no Hash object

  return {
    verify(authorization) {
      const hashed = authorization ? cacheKey(authorization) : undefined;
      const cached = hashed ? verified.get(hashed) : undefined;
      if (cached && cached.expiresAt > Date.now() / 1000) return { charmId: cached.charmId };
      try {
        const token = bearerToken(authorization);
        const { charmId, expiresAt } = verifyCharmJwt(token, {
          publicKey: key.publicKey,
          kid: key.kid,
          issuer: options.issuer,
        });
        if (verified.size >= MAX_CACHED_TOKENS) verified.clear();
        verified.set(hashed as string, { charmId, expiresAt });
        return { charmId };
      } catch (err) {
        if (err instanceof JwtError) throw new UnauthorizedError(err.message, { cause: err });
        throw err;
      }
    },
    ready: () => readyPromise,
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
    },
  };
}
