import {
  createLocalJWKSet,
  createRemoteJWKSet,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { z } from 'zod';
import { type Role, WorkerType } from '../../shared/schemas/worker.js';

/** Better Auth can sign with these; `none` and HMAC are never accepted. */
export const ALLOWED_ALGORITHMS = ['EdDSA', 'ES256', 'RS256', 'PS256'];

export interface VerifiedClaims {
  sub: string;
  email: string | null;
  name: string | null;
  role: z.infer<typeof Role>;
  /** A worker type the token declares; only the development key's tokens may declare one. */
  declaredType: z.infer<typeof WorkerType> | null;
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

const Claims = z.object({
  sub: z.string().trim().min(1).max(100),
  email: z.string().max(320).nullish(),
  name: z.string().max(200).nullish(),
  role: z.string().nullish(),
  worker_type: WorkerType.nullish(),
});

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
          clockTolerance: 5,
          requiredClaims: ['sub', 'exp'],
          ...(options.issuer ? { issuer: options.issuer } : {}),
          ...(options.audience ? { audience: options.audience } : {}),
        }));
      } catch (error) {
        throw classify(error);
      }
      const claims = Claims.safeParse(payload);
      if (!claims.success) throw new InvalidTokenError('Token claims are invalid');
      const { sub, email, name, role, worker_type } = claims.data;
      return {
        sub,
        email: email ?? null,
        name: name ?? null,
        role: role === 'admin' ? 'admin' : 'user',
        declaredType: options.trustWorkerTypeClaim ? (worker_type ?? null) : null,
      };
    },
  };
}

// A key set that cannot be fetched or read is the auth server's fault (503); anything wrong with
// the token itself is the caller's (401).
function classify(error: unknown): Error {
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) {
    return new AuthUnavailableError('Auth server unreachable');
  }
  if (error instanceof errors.JOSEError && error.code !== 'ERR_JOSE_GENERIC') {
    return new InvalidTokenError(error instanceof errors.JWTExpired ? 'Token expired' : 'Invalid token');
  }
  return new AuthUnavailableError('Auth server unreachable');
}

export interface RemoteVerifierOptions extends VerifierOptions {
  jwksUrl: string;
  /** Minimum time between two fetches caused by unknown `kid`s. */
  cooldownMs?: number;
  timeoutMs?: number;
  cacheMaxAgeMs?: number;
}

/** Verifies against a JWKS over HTTP (Better Auth's `/api/auth/jwks`), cached, refetched on key rotation. */
export function createRemoteVerifier(options: RemoteVerifierOptions): TokenVerifier {
  const jwks = createRemoteJWKSet(new URL(options.jwksUrl), {
    cooldownDuration: options.cooldownMs ?? 30_000,
    timeoutDuration: options.timeoutMs ?? 3_000,
    cacheMaxAge: options.cacheMaxAgeMs ?? 10 * 60_000,
  });
  return createVerifier(jwks, options);
}

/** Verifies against keys held in memory (development mode): the same checks as the remote one. */
export function createLocalVerifier(keys: JSONWebKeySet, options: VerifierOptions): TokenVerifier {
  return createVerifier(createLocalJWKSet(keys), options);
}
