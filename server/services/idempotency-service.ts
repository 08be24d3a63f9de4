import { createHash } from 'node:crypto';
import { and, eq, lt, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { idempotencyKeys } from '../../db/schema/index.js';
import { conflict, unprocessable } from '../errors.js';

export const KEY_TTL_HOURS = 24;

export type Claim = { kind: 'new' } | { kind: 'replay'; response: unknown };

export function requestHash(procedure: string, input: unknown): string {
  return createHash('sha256')
    .update(procedure)
    .update('\0')
    .update(JSON.stringify(input ?? null))
    .digest('hex');
}

function keyIs(actorId: string, key: string) {
  return and(eq(idempotencyKeys.actorId, actorId), eq(idempotencyKeys.key, key));
}

/**
 * Claims a key for this request inside the caller's transaction. A concurrent request with the same
 * key waits on the primary key until this transaction ends, then replays what it committed.
 */
export async function claim(tx: Db, actorId: string, key: string, hash: string): Promise<Claim> {
  const inserted = await tx
    .insert(idempotencyKeys)
    .values({ actorId, key, requestHash: hash })
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key });
  if (inserted.length > 0) return { kind: 'new' };
  const [reused] = await tx
    .update(idempotencyKeys)
    .set({ requestHash: hash, response: null, createdAt: sql`now()` })
    .where(
      and(
        keyIs(actorId, key),
        lt(idempotencyKeys.createdAt, sql`now() - make_interval(hours => ${KEY_TTL_HOURS})`),
      ),
    )
    .returning({ key: idempotencyKeys.key });
  if (reused) return { kind: 'new' };
  const [row] = await tx
    .select({ requestHash: idempotencyKeys.requestHash, response: idempotencyKeys.response })
    .from(idempotencyKeys)
    .where(keyIs(actorId, key));
  if (!row) throw conflict('Idempotency key changed concurrently; retry', 'CONCURRENT_CHANGE');
  if (row.requestHash !== hash) {
    throw unprocessable(
      'This Idempotency-Key was used for a different request; use a new key',
      'IDEMPOTENCY_KEY_REUSED',
    );
  }
  return { kind: 'replay', response: row.response };
}

export async function store(tx: Db, actorId: string, key: string, response: unknown): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ response: response === undefined ? null : response })
    .where(keyIs(actorId, key));
}

export async function purgeExpired(db: Db): Promise<void> {
  await db
    .delete(idempotencyKeys)
    .where(lt(idempotencyKeys.createdAt, sql`now() - make_interval(hours => ${KEY_TTL_HOURS})`));
}
