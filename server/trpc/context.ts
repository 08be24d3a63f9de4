import { TRPCError } from '@trpc/server';
import type { FastifyRequest } from 'fastify';
import type { Database, Db } from '../../db/client.js';
import type { Actor } from '../auth/actor.js';
import {
  AuthUnavailableError,
  InvalidTokenError,
  type TokenVerifier,
  type VerifiedClaims,
} from '../auth/verifier.js';
import { toTRPCError } from '../errors.js';
import type { WorkerRegistry } from '../services/worker-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified actor, once the context knows it (see `buildApp`'s request log line). */
    actorId: string | null;
  }
}

export interface Context {
  db: Db;
  database: Database;
  registry: WorkerRegistry;
  requestId: string;
  /** Null when the request carried no usable token; `authError` then says why. */
  actor: Actor | null;
  authError: TRPCError | null;
  /** The `Idempotency-Key` header of a mutation, if any (tRPC callers may use the input field instead). */
  idempotencyKey: string | null;
  /** A procedure still waiting after this long (a database that hangs, a pool that is exhausted) gets 503. */
  deadlineMs: number;
}

export interface InnerContextOptions {
  database: Database;
  registry: WorkerRegistry;
  actor: Actor | null;
  requestId: string;
  authError?: TRPCError | null;
  idempotencyKey?: string | null;
  deadlineMs?: number;
}

/** A context without HTTP: for tests, server-side callers (MCP) and scripts. */
export function createContextInner(options: InnerContextOptions): Context {
  return {
    db: options.database.db,
    database: options.database,
    registry: options.registry,
    requestId: options.requestId,
    actor: options.actor,
    authError: options.authError ?? null,
    idempotencyKey: options.idempotencyKey ?? null,
    // Below the HTTP request timeout, so the caller gets an answer rather than a cut connection.
    deadlineMs: options.deadlineMs ?? 10_000,
  };
}

export interface ContextDeps {
  database: Database;
  registry: WorkerRegistry;
  verifier: TokenVerifier;
}

const BEARER = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i;
const verified = new WeakMap<FastifyRequest, Promise<VerifiedClaims | TRPCError>>();

/**
 * The request's bearer token, verified once however many hooks ask (the rate limiter keys on the
 * verified subject, the context needs the claims). Failures are returned, not thrown.
 */
export function verifyRequest(
  verifier: TokenVerifier,
  req: FastifyRequest,
): Promise<VerifiedClaims | TRPCError> {
  let result = verified.get(req);
  if (!result) {
    result = verify(verifier, req);
    verified.set(req, result);
  }
  return result;
}

async function verify(verifier: TokenVerifier, req: FastifyRequest): Promise<VerifiedClaims | TRPCError> {
  const header = req.headers.authorization;
  if (!header) return unauthorized('Missing bearer token');
  // RFC 7235: the scheme is case-insensitive; the credentials are one token68.
  const match = BEARER.exec(header);
  if (!match?.[1]) return unauthorized('Authorization must be a Bearer token');
  try {
    return await verifier.verify(match[1]);
  } catch (error) {
    // Why a token was refused is worth a line when debugging a client; the token itself never is.
    const reason =
      error instanceof InvalidTokenError || error instanceof AuthUnavailableError
        ? error.message
        : (error as Error).name;
    req.log.debug({ reason }, 'bearer token refused');
    return authFailure(error);
  }
}

/** The context of an HTTP request. Auth failures are kept, not thrown: public procedures ignore them. */
export async function createContext(deps: ContextDeps, req: FastifyRequest): Promise<Context> {
  const key = req.headers['idempotency-key'];
  const inner = {
    database: deps.database,
    registry: deps.registry,
    requestId: req.id,
    idempotencyKey: typeof key === 'string' ? key : null,
  };
  const claims = await verifyRequest(deps.verifier, req);
  if (claims instanceof TRPCError) return createContextInner({ ...inner, actor: null, authError: claims });
  try {
    const actor = await deps.registry.actorFor(deps.database.db, claims, req.id);
    // For the request's log line; a child logger per request costs more than the line itself.
    req.actorId = actor.id;
    return createContextInner({ ...inner, actor });
  } catch (error) {
    return createContextInner({ ...inner, actor: null, authError: authFailure(error) });
  }
}

function unauthorized(message: string): TRPCError {
  return new TRPCError({ code: 'UNAUTHORIZED', message });
}

function authFailure(error: unknown): TRPCError {
  if (error instanceof InvalidTokenError) return unauthorized(error.message);
  if (error instanceof AuthUnavailableError) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: error.message, cause: error });
  }
  return toTRPCError(error);
}
