import { TRPCError } from '@trpc/server';
import type { FastifyRequest } from 'fastify';
import type { Database, Db } from '../../db/client.js';
import type { Actor } from '../auth/actor.js';
import { type BearerFailure, verifyRequest } from '../auth/bearer.js';
import { AuthUnavailableError, InvalidTokenError, type TokenVerifier } from '../auth/verifier.js';
import { DEFAULT_AGENT_LEASE_SECONDS, DEFAULT_REQUEST_TIMEOUT_MS, procedureDeadlineMs } from '../config.js';
import { toTRPCError } from '../errors.js';
import { EventFeed } from '../services/events/index.js';
import { detachedWebhooks, type WebhookRuntime } from '../services/webhooks/index.js';
import type { WorkerRegistry } from '../services/worker-service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified subject of the request's token, for the request's log line (see `buildApp`). */
    actorId: string | null;
  }
}

export interface Context {
  db: Db;
  database: Database;
  registry: WorkerRegistry;
  /** The process's event feed: what `events.*` streams and pages read up to. */
  events: EventFeed;
  requestId: string;
  /** Why the request has no caller (no usable token); null when it has one. */
  authError: TRPCError | null;
  /**
   * The caller, asked for by protected procedures under their deadline: a worker seen for the first
   * time is registered then, a write that can wait on the database like any other. Rejects with
   * `authError` when there is no caller.
   */
  resolveActor: () => Promise<Actor>;
  /** The `Idempotency-Key` header of a mutation, if any (tRPC callers may use the input field instead). */
  idempotencyKey: string | null;
  /** A procedure still waiting after this long (a database that hangs, a pool that is exhausted) gets 503. */
  deadlineMs: number;
  /** The lease of an agent's claim that names none. */
  agentLeaseSeconds: number;
  /** Webhook URL rules and the delivery worker's wake-up. */
  webhooks: WebhookRuntime;
}

interface ContextOptions {
  database: Database;
  registry: WorkerRegistry;
  events: EventFeed;
  requestId: string;
  idempotencyKey?: string | null;
  /** Default: the deadline of a server with the default request timeout. */
  deadlineMs?: number;
  /** Default: AGENT_LEASE_SECONDS's default. */
  agentLeaseSeconds?: number;
  /** Default: strict URL rules and no worker to wake. */
  webhooks?: WebhookRuntime;
}

function contextOf(
  options: ContextOptions,
  authError: TRPCError | null,
  resolveActor: () => Promise<Actor>,
): Context {
  return {
    db: options.database.db,
    database: options.database,
    registry: options.registry,
    events: options.events,
    requestId: options.requestId,
    authError,
    resolveActor,
    idempotencyKey: options.idempotencyKey ?? null,
    deadlineMs: options.deadlineMs ?? procedureDeadlineMs(DEFAULT_REQUEST_TIMEOUT_MS),
    agentLeaseSeconds: options.agentLeaseSeconds ?? DEFAULT_AGENT_LEASE_SECONDS,
    webhooks: options.webhooks ?? detachedWebhooks,
  };
}

function refused(options: ContextOptions, authError: TRPCError): Context {
  return contextOf(options, authError, () => Promise.reject(authError));
}

export interface InnerContextOptions extends Omit<ContextOptions, 'events'> {
  actor: Actor | null;
  /** Default: a feed of its own on `database`, started only if an event procedure is called. */
  events?: EventFeed;
  authError?: TRPCError | null;
}

/** A context without HTTP: for tests, server-side callers and scripts. */
export function createContextInner(inner: InnerContextOptions): Context {
  const options = {
    ...inner,
    events: inner.events ?? new EventFeed(inner.database, { log: { warn: () => {} } }),
  };
  const { actor } = options;
  if (!actor) return refused(options, options.authError ?? unauthorized('Missing bearer token'));
  return contextOf(options, null, () => Promise.resolve(actor));
}

export interface ContextDeps {
  database: Database;
  registry: WorkerRegistry;
  events: EventFeed;
  verifier: TokenVerifier;
  deadlineMs: number;
  /** Default: AGENT_LEASE_SECONDS's default. */
  agentLeaseSeconds?: number;
  webhooks?: WebhookRuntime;
}

/** The context of an HTTP request. Auth failures are kept, not thrown: public procedures ignore them. */
export async function createContext(deps: ContextDeps, req: FastifyRequest): Promise<Context> {
  const key = req.headers['idempotency-key'];
  const options: ContextOptions = {
    database: deps.database,
    registry: deps.registry,
    events: deps.events,
    requestId: req.id,
    idempotencyKey: typeof key === 'string' ? key : null,
    deadlineMs: deps.deadlineMs,
    agentLeaseSeconds: deps.agentLeaseSeconds,
    webhooks: deps.webhooks,
  };
  const claims = await verifyRequest(deps.verifier, req);
  if (claims instanceof Error) return refused(options, authFailure(claims));
  // For the request's log line; a child logger per request costs more than the line itself.
  req.actorId = claims.sub;
  let actor: Promise<Actor> | undefined;
  return contextOf(options, null, () => {
    actor ??= deps.registry.actorFor(deps.database.db, claims, req.id);
    return actor;
  });
}

function unauthorized(message: string): TRPCError {
  return new TRPCError({ code: 'UNAUTHORIZED', message });
}

function authFailure(error: BearerFailure): TRPCError {
  if (error instanceof InvalidTokenError) return unauthorized(error.message);
  if (error instanceof AuthUnavailableError) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: error.message, cause: error });
  }
  return toTRPCError(error);
}
