import { jsonb, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';

/**
 * Responses of mutations sent with an `Idempotency-Key`, per actor. The row is written in the same
 * transaction as the mutation, so a key is either unused or holds the committed response.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    actorId: text().notNull(),
    key: text().notNull(),
    /** sha256 of the procedure and its input: the same key with another request is refused. */
    requestHash: text().notNull(),
    response: jsonb().$type<unknown>(),
    createdAt: createdAt(),
  },
  (t) => [primaryKey({ columns: [t.actorId, t.key] })],
);
