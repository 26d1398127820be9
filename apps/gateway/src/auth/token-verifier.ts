import type { KeyObject } from 'node:crypto';
import {
  type Backend,
  bearerToken,
  JwtError,
  loadServerKey,
  publicKeyFromJwks,
  verifyCharmJwt,
} from '@cring/charm';
import type { Logger } from '@cring/service-runtime';
import { backendUrl } from '../backends/backend-url.ts';
import { GatewayError, UnauthorizedError } from '../errors.ts';

const MAX_CACHED_TOKENS = 10_000;

export interface TokenVerifier {
  /** The charm_id of a valid token; throws UnauthorizedError (401) otherwise. Never logs the token. */
  verify(authorization: string | undefined): { charmId: string };
  /** Resolves once the cluster key is loaded. */
  ready(): Promise<void>;
  close(): void;
}

/**
 * Verifies users' JWTs with the cluster key: from the configured key file, or from a configured backend's
 * `/v1/public/jwks`. Never from a URL named in the token: the issuer is compared, not followed.
 */
export function createTokenVerifier(options: {
  issuer: string;
  serverKeyFile?: string;
  backends: readonly Backend[];
  logger: Logger;
  retryMs?: number;
}): TokenVerifier {
  let key: { publicKey: KeyObject; kid: string } | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  let markReady: () => void = () => {};
  const readyPromise = new Promise<void>((resolve) => (markReady = resolve));

  if (options.serverKeyFile) {
    const loaded = loadServerKey(options.serverKeyFile);
    key = { publicKey: loaded.publicKey, kid: loaded.kid };
    markReady();
  } else {
    const fetchJwks = async () => {
      for (const backend of options.backends) {
        try {
          const response = await fetch(backendUrl(backend, '/v1/public/jwks'), {
            signal: AbortSignal.timeout(5000),
          });
          if (!response.ok) throw new Error(`status ${response.status}`);
          const loaded = publicKeyFromJwks(await response.json());
          key = loaded;
          options.logger.info(
            { backend: backend.name, kid: loaded.kid },
            'loaded the cluster key from the backend JWKS',
          );
          markReady();
          return;
        } catch (err) {
          options.logger.warn(
            { backend: backend.name, err },
            'could not load the cluster key from this backend',
          );
        }
      }
      if (!closed) timer = setTimeout(fetchJwks, options.retryMs ?? 2000);
    };
    void fetchJwks();
  }

  // Verified tokens, until they expire: the stock client sends the same token for every request of a command,
  // and an Ed25519 check per request was a measurable share of small requests' CPU. Keys are whole tokens.
  const verified = new Map<string, { charmId: string; expiresAt: number }>();

  return {
    verify(authorization) {
      const cached = authorization ? verified.get(authorization) : undefined;
      if (cached && cached.expiresAt > Date.now() / 1000) return { charmId: cached.charmId };
      if (!key) {
        throw new GatewayError(
          503,
          'KEY_UNAVAILABLE',
          'the gateway has not loaded the cluster key yet: no backend answered /v1/public/jwks',
        );
      }
      try {
        const token = bearerToken(authorization);
        const { charmId, expiresAt } = verifyCharmJwt(token, {
          publicKey: key.publicKey,
          kid: key.kid,
          issuer: options.issuer,
        });
        if (verified.size >= MAX_CACHED_TOKENS) verified.clear();
        verified.set(authorization as string, { charmId, expiresAt });
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
