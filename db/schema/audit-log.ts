import { bigint, index, integer, jsonb, pgTable, text } from 'drizzle-orm/pg-core';
import { timestampMs } from './columns.js';
import { actorType, auditAction } from './enums.js';

// No foreign keys: the log outlives the rows it speaks of (a deleted task keeps its history).
export const auditLog = pgTable(
  'audit_log',
  {
    id: bigint({ mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
    at: timestampMs().notNull().defaultNow(),
    actorId: text().notNull(),
    actorType: actorType().notNull(),
    action: auditAction().notNull(),
    taskId: integer(),
    projectSlug: text(),
    context: jsonb().$type<Record<string, unknown>>().notNull().default({}),
    requestId: text(),
    /** The task as the change left it (`to_jsonb` of its row, written by a trigger); null when gone or none. */
    task: jsonb().$type<Record<string, unknown>>(),
  },
  (t) => [
    index('audit_log_task_idx').on(t.taskId, t.id),
    index('audit_log_project_idx').on(t.projectSlug, t.id),
    index('audit_log_actor_idx').on(t.actorId, t.id),
    index('audit_log_at_idx').on(t.at),
  ],
);
