import type { FastifyRequest } from 'fastify';
import {
  AuthUnavailableError,
  InvalidTokenError,
  type TokenVerifier,
  type VerifiedClaims,
} from './verifier.js';

/** Why a request has no verified caller: a token error (401), the auth server down (503), or else. */
export type BearerFailure = InvalidTokenError | AuthUnavailableError | Error;

// RFC 7235: the scheme is case-insensitive; the credentials are one token68.
const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const verified = new WeakMap<FastifyRequest, Promise<VerifiedClaims | BearerFailure>>();

/**
 * The request's bearer token, verified once however many hooks ask (the rate limiter keys on the
 * verified subject, the tRPC context needs the claims). Failures are returned, not thrown.
 */
export function verifyRequest(
  verifier: TokenVerifier,
  req: FastifyRequest,
): Promise<VerifiedClaims | BearerFailure> {
  let result = verified.get(req);
  if (!result) {
    result = verify(verifier, req);
    verified.set(req, result);
  }
  return result;
}

async function verify(verifier: TokenVerifier, req: FastifyRequest): Promise<VerifiedClaims | BearerFailure> {
  const header = req.headers.authorization;
  if (!header) return new InvalidTokenError('Missing bearer token');
  const match = BEARER.exec(header);
  if (!match?.[1]) return new InvalidTokenError('Authorization must be a Bearer token');
  try {
    return await verifier.verify(match[1]);
  } catch (error) {
    // Why a token was refused is worth a line when debugging a client; the token itself never is.
    const reason =
      error instanceof InvalidTokenError || error instanceof AuthUnavailableError
        ? error.message
        : (error as Error).name;
    req.log.debug({ reason }, 'bearer token refused');
    return error instanceof Error ? error : new Error(String(error));
  }
}
