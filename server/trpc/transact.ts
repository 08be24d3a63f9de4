import type { Db } from '../../db/client.js';
import { IdempotencyKey } from '../../shared/schemas/common.js';
import type { Actor } from '../auth/actor.js';
import { invalid } from '../errors.js';
import type { ServiceContext } from '../services/context.js';
import * as idempotency from '../services/idempotency-service.js';

/** What a protected procedure's context holds that these helpers use. */
export interface ProcedureContext {
  db: Db;
  actor: Actor;
  requestId: string;
  /** The `Idempotency-Key` header, if the request had one. */
  idempotencyKey: string | null;
  procedurePath: string;
  agentLeaseSeconds: number;
}

function keyOf(ctx: ProcedureContext, input: unknown): { key: string; request: unknown } | null {
  if (input && typeof input === 'object' && 'idempotencyKey' in input) {
    const { idempotencyKey, ...request } = input as { idempotencyKey?: unknown };
    if (typeof idempotencyKey === 'string') return { key: idempotencyKey, request };
  }
  if (ctx.idempotencyKey === null) return null;
  if (!IdempotencyKey.safeParse(ctx.idempotencyKey).success) {
    throw invalid('Idempotency-Key must be 1-255 visible ASCII characters');
  }
  return { key: ctx.idempotencyKey, request: input };
}

/**
 * Runs a mutation in one transaction: the procedure owns it, services never commit. With an
 * idempotency key (the tRPC/REST input field `idempotencyKey`, or the `Idempotency-Key` header) the
 * key's claim, the change, its audit row and the stored response commit together; a retry gets the
 * stored response and changes nothing.
 */
export function transact<T>(ctx: ProcedureContext, input: unknown, run: (tx: Db) => Promise<T>): Promise<T> {
  const scope = keyOf(ctx, input);
  if (!scope) return ctx.db.transaction(run);
  const hash = idempotency.requestHash(ctx.procedurePath, scope.request);
  return ctx.db.transaction(async (tx) => {
    const claim = await idempotency.claim(tx, ctx.actor.id, scope.key, hash);
    if (claim.kind === 'replay') return claim.response as T;
    const result = await run(tx);
    await idempotency.store(tx, ctx.actor.id, scope.key, result);
    return result;
  });
}

type Service<I, R> = (ctx: ServiceContext, input: I) => Promise<R>;
type Resolver<I, O> = (opts: { ctx: ProcedureContext; input: I }) => Promise<O>;

const serviceContext = (ctx: ProcedureContext, tx: Db): ServiceContext => ({
  tx,
  actor: ctx.actor,
  requestId: ctx.requestId,
  agentLeaseSeconds: ctx.agentLeaseSeconds,
});

/** A mutation's resolver: the service in its own transaction (see `transact`), the result mapped to the wire. */
export function inTransaction<I, R, O>(service: Service<I, R>, toWire: (result: R) => O): Resolver<I, O> {
  return ({ ctx, input }) =>
    transact(ctx, input, async (tx) => toWire(await service(serviceContext(ctx, tx), input)));
}

/** A query's resolver: the service on the pool, the result mapped to the wire. */
export function read<I, R, O>(service: Service<I, R>, toWire: (result: R) => O): Resolver<I, O> {
  return async ({ ctx, input }) => toWire(await service(serviceContext(ctx, ctx.db), input));
}
