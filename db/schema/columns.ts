import { timestamp } from 'drizzle-orm/pg-core';

// Millisecond precision: JavaScript dates round-trip exactly, so keyset cursors built from them
// compare equal to the stored values.
export const timestampMs = () => timestamp({ withTimezone: true, precision: 3, mode: 'date' });

export const createdAt = () => timestampMs().notNull().defaultNow();
