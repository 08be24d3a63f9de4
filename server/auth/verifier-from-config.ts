import type { Config } from '../config.js';
import { DEV_AUDIENCE, DEV_ISSUER, loadOrCreateDevKey } from './dev-keys.js';
import {
  cacheVerifiedTokens,
  createLocalVerifier,
  createRemoteVerifier,
  type TokenVerifier,
} from './verifier.js';

/**
 * Production verifies against the configured JWKS; development against the server's own key.
 * Either way verified tokens are remembered (`AUTH_TOKEN_CACHE_SIZE`).
 */
export async function verifierFromConfig(
  config: Config,
): Promise<{ verifier: TokenVerifier; devMode: boolean }> {
  const { verifier, devMode } = await baseVerifier(config);
  return { verifier: cacheVerifiedTokens(verifier, { maxEntries: config.auth.tokenCacheSize }), devMode };
}

async function baseVerifier(config: Config): Promise<{ verifier: TokenVerifier; devMode: boolean }> {
  if (config.auth.jwksUrl) {
    // With only AUTH_JWKS_URL set, expect what Better Auth writes: its own origin in `iss` and `aud`.
    const jwksOrigin = new URL(config.auth.jwksUrl).origin;
    return {
      verifier: createRemoteVerifier({
        jwksUrl: config.auth.jwksUrl,
        issuer: config.auth.issuer ?? jwksOrigin,
        audience: config.auth.audience ?? jwksOrigin,
      }),
      devMode: false,
    };
  }
  const key = await loadOrCreateDevKey(config.dataDir);
  return {
    verifier: createLocalVerifier(
      { keys: [key.publicJwk] },
      { issuer: DEV_ISSUER, audience: DEV_AUDIENCE, trustWorkerTypeClaim: true },
    ),
    devMode: true,
  };
}
