import type { Db } from '../../db/client.js';
import type { Actor } from '../auth/actor.js';
import * as idempotency from '../services/idempotency-service.js';

export interface MutationContext {
  db: Db;
  actor: Actor;
  /** Set when the request carried an idempotency key (header, or `idempotencyKey` in tRPC input). */
  idempotency: { key: string; path: string } | null;
}

/**
 * Runs a mutation in one transaction: the procedure owns it, services never commit. With an
 * idempotency key, the key's claim, the change, its audit row and the stored response commit
 * together; a retry gets the stored response and changes nothing.
 */
export function transact<T>(ctx: MutationContext, input: unknown, run: (tx: Db) => Promise<T>): Promise<T> {
  const scope = ctx.idempotency;
  if (!scope) return ctx.db.transaction(run);
  const hash = idempotency.requestHash(scope.path, input);
  return ctx.db.transaction(async (tx) => {
    const claim = await idempotency.claim(tx, ctx.actor.id, scope.key, hash);
    if (claim.kind === 'replay') return claim.response as T;
    const result = await run(tx);
    await idempotency.store(tx, ctx.actor.id, scope.key, result);
    return result;
  });
}
