import { pgTable, text } from 'drizzle-orm/pg-core';
import { createdAt, timestampMs } from './columns.js';
import { workerType } from './enums.js';

export const workers = pgTable('workers', {
  id: text().primaryKey(),
  type: workerType().notNull().default('human'),
  name: text().notNull(),
  email: text(),
  capabilities: text().array().notNull().default([]),
  createdAt: createdAt(),
  lastSeenAt: timestampMs().notNull().defaultNow(),
});
