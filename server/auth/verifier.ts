import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';
import type { Role, WorkerType } from '../../shared/enums.js';
import { WorkerType as WorkerTypeSchema } from '../../shared/schemas/worker.js';

/** Better Auth can sign with these; `none` and HMAC are never accepted. */
export const ALLOWED_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'];

/** Seconds of clock skew allowed on `exp` and `nbf` between the auth server and us. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export interface VerifiedClaims {
  sub: string;
  email: string | null;
  name: string | null;
  role: Role;
  /** A worker type the token declares; only the development key's tokens may declare one. */
  declaredType: WorkerType | null;
  /** When the token expires (its `exp`), in ms since the epoch. */
  expiresAt: number;
}

export interface TokenVerifier {
  /** Throws `InvalidTokenError` (401) or `AuthUnavailableError` (503). */
  verify(token: string): Promise<VerifiedClaims>;
}

export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
}
export class AuthUnavailableError extends Error {
  override name = 'AuthUnavailableError';
}

// `sub` is the worker id as it is, never trimmed or rewritten: it is an identity. Invisible format
// characters (Cf) are refused: `user1\u200b` would be another worker displayed as `user1`.
const Subject = z
  .string()
  .min(1)
  .max(100)
  .regex(/^[^\s\p{Cc}\p{Cf}]+$/u);

// Profile claims are taken when they make sense and ignored otherwise: an odd `name` from the auth
// server is no reason to lock a user out.
function optionalText(value: unknown, max: number): string | null {
  const text = typeof value === 'string' ? value.trim() : '';
  return text !== '' && text.length <= max ? text : null;
}

function roleOf(claim: unknown): Role {
  const roles = Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(',') : [];
  return roles.some((role) => typeof role === 'string' && role.trim() === 'admin') ? 'admin' : 'user';
}

export interface VerifierOptions {
  issuer: string | null;
  audience: string | null;
  /** Development tokens may say `worker_type: agent`; real ones may not. */
  trustWorkerTypeClaim?: boolean;
}

function createVerifier(getKey: JWTVerifyGetKey, options: VerifierOptions): TokenVerifier {
  return {
    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          algorithms: ALLOWED_ALGORITHMS,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['sub', 'exp'],
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        }));
      } catch (error) {
        throw classify(error);
      }
      const sub = Subject.safeParse(payload.sub);
      if (!sub.success) throw new InvalidTokenError('Invalid token: "sub" is not a usable worker id');
      const declared = WorkerTypeSchema.safeParse(payload.worker_type);
      return {
        sub: sub.data,
        email: optionalText(payload.email, 320),
        name: optionalText(payload.name, 200),
        // Better Auth's admin plugin writes `role` as a string, several roles comma-separated.
        role: roleOf(payload.role),
        declaredType: options.trustWorkerTypeClaim && declared.success ? declared.data : null,
        // `exp` is a required claim, so jose has checked it is a number.
        expiresAt: (payload.exp as number) * 1000,
      };
    },
  };
}

// Only the key lookup can fail for the auth server's sake (see `resolveKeysFrom`); whatever else
// jose rejects is the token's fault and a 401.
function classify(error: unknown): Error {
  if (error instanceof AuthUnavailableError) return error;
  if (error instanceof errors.JWTExpired) return new InvalidTokenError('Token expired');
  if (error instanceof errors.JWTClaimValidationFailed) {
    // Naming the claim tells an operator which of AUTH_ISSUER / AUTH_AUDIENCE is off.
    return new InvalidTokenError(
      error.claim === 'nbf' ? 'Token not yet valid' : `Invalid token: "${error.claim}" claim check failed`,
    );
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new InvalidTokenError('Token algorithm not allowed');
  if (error instanceof errors.JWKSNoMatchingKey)
    return new InvalidTokenError('Token signed by an unknown key');
  return new InvalidTokenError('Invalid token');
}

/**
 * Wraps a JWKS lookup so that "the key set could not be had" (fetch failed, timed out, not 200, not
 * a JWKS) becomes `AuthUnavailableError`, while "the token names a key the set does not hold" stays
 * a token error.
 */
function resolveKeysFrom(jwks: JWTVerifyGetKey, lastKnown: () => JSONWebKeySet | undefined): JWTVerifyGetKey {
  let fallback: { json: string; getKey: JWTVerifyGetKey } | null = null;
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
        throw error;
      }
      // Stale-if-error: the cache has aged out and the auth server is down, but the key this token
      // names was published there; keep accepting it rather than turning every request into a 503.
      // A key the server withdrew is gone from the set at the first successful refetch.
      const set = lastKnown();
      if (set) {
        // jose hands out a copy each time; compare by content so keys are not re-imported per request.
        const json = JSON.stringify(set);
        if (fallback?.json !== json) fallback = { json, getKey: createLocalJWKSet(set) };
        try {
          return await fallback.getKey(header, token);
        } catch {
          // Not a key we knew: the auth server may well have it; we cannot tell.
        }
      }
      throw new AuthUnavailableError('Auth server unreachable', { cause: error });
    }
  };
}

export interface TokenCacheOptions {
  /** How many verified tokens are remembered (0: none, every request verifies its signature). */
  maxEntries: number;
  /** The longest a verified token is remembered, however far off its expiry (default 60 s). */
  maxAgeMs?: number;
}

/**
 * Remembers the claims of tokens it has verified, keyed by the whole token (signature included, so
 * no other string can hit an entry): a signature check is a large share of a small request, and a
 * client sends the same token for as long as it lives. Only successes are kept, never past the
 * token's expiry, and for at most `maxAgeMs`, well within the key set's own cache (10 min): a key
 * the auth server withdraws stops working as soon as it would without this cache.
 */
export function cacheVerifiedTokens(verifier: TokenVerifier, options: TokenCacheOptions): TokenVerifier {
  if (options.maxEntries <= 0) return verifier;
  const maxAgeMs = options.maxAgeMs ?? 60_000;
  const verified = new LRUCache<string, VerifiedClaims>({ max: options.maxEntries, ttl: maxAgeMs });
  return {
    async verify(token) {
      const known = verified.get(token);
      if (known && known.expiresAt > Date.now()) return known;
      const claims = await verifier.verify(token);
      const ttl = Math.min(maxAgeMs, claims.expiresAt - Date.now());
      if (ttl > 0) verified.set(token, claims, { ttl });
      return claims;
    },
  };
}

export interface RemoteVerifierOptions extends VerifierOptions {
  jwksUrl: string;
  // A remote key set may sign for other services too: `iss` and `aud` are always checked.
  issuer: string;
  audience: string;
  /** Minimum time between two fetches caused by unknown `kid`s (default 30 s). */
  cooldownMs?: number;
  /** A JWKS fetch taking longer fails (default 3 s). */
  timeoutMs?: number;
  /** How long a fetched key set is used before it is fetched again (default 10 min). */
  cacheMaxAgeMs?: number;
}

/** Verifies against a JWKS over HTTP (Better Auth's `/api/auth/jwks`), cached, refetched on key rotation. */
export function createRemoteVerifier(options: RemoteVerifierOptions): TokenVerifier {
  // jose's remote set caches, refetches on an unknown `kid` at most once per cool-down, shares
  // one fetch between concurrent requests and aborts a fetch after the timeout.
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
    cooldownDuration: options.cooldownMs ?? 30_000,
    timeoutDuration: options.timeoutMs ?? 3_000,
    cacheMaxAge: options.cacheMaxAgeMs ?? 10 * 60_000,
  });
  return createVerifier(
    resolveKeysFrom(jwks, () => jwks.jwks()),
    options,
  );
}

/** Verifies against keys held in memory (development mode): the same checks as the remote one. */
export function createLocalVerifier(keys: JSONWebKeySet, options: VerifierOptions): TokenVerifier {
  return createVerifier(createLocalJWKSet(keys), options);
}
