import { and, desc, eq, gt, gte, inArray, lt, lte, sql } from 'drizzle-orm';
import { auditLog } from '../../db/schema/index.js';
import type { AuditAction } from '../../shared/enums.js';
import type { AuditListQuery } from '../../shared/schemas/audit.js';
import type { TaskHistoryQuery } from '../../shared/schemas/task.js';
import type { ServiceContext } from './context.js';
import { decodeCursor, encodeCursor, keysetPage } from './cursor.js';
import { reusableStatement } from './reusable-statement.js';
import { auditVisibleTo } from './visibility.js';

export type AuditRow = typeof auditLog.$inferSelect;

export interface AuditRecord {
  action: AuditAction;
  taskId?: number | null;
  projectSlug?: string | null;
  context?: Record<string, unknown>;
}

type AuditValues = Omit<typeof auditLog.$inferInsert, 'id' | 'at'>;

const insertRecord = reusableStatement<unknown, AuditValues>((db) =>
  db.insert(auditLog).values({
    actorId: sql.placeholder('actorId'),
    actorType: sql.placeholder('actorType'),
    action: sql.placeholder('action'),
    taskId: sql.placeholder('taskId'),
    projectSlug: sql.placeholder('projectSlug'),
    context: sql.placeholder('context'),
    requestId: sql.placeholder('requestId'),
  }),
);

/** Appends one audit row in the caller's transaction: if it fails, the change it records fails too. */
export async function record(ctx: ServiceContext, entry: AuditRecord): Promise<void> {
  await insertRecord(ctx.tx, {
    actorId: ctx.actor.id,
    actorType: ctx.actor.type,
    action: entry.action,
    taskId: entry.taskId ?? null,
    projectSlug: entry.projectSlug ?? null,
    context: entry.context ?? {},
    requestId: ctx.requestId,
  });
}

/** Entries the actor may see, newest first, filtered, one keyset page at a time. */
export async function list(
  ctx: ServiceContext,
  query: AuditListQuery,
): Promise<{ items: AuditRow[]; nextCursor: string | null }> {
  const after = query.cursor ? decodeCursor(query.cursor, 'audit') : null;
  const rows = await ctx.tx
    .select()
    .from(auditLog)
    .where(
      and(
        auditVisibleTo(ctx.actor),
        query.taskId === undefined ? undefined : eq(auditLog.taskId, query.taskId),
        query.project === undefined ? undefined : eq(auditLog.projectSlug, query.project),
        query.actorId === undefined ? undefined : eq(auditLog.actorId, query.actorId),
        query.action === undefined ? undefined : inArray(auditLog.action, query.action),
        query.since === undefined ? undefined : gte(auditLog.at, new Date(query.since)),
        query.until === undefined ? undefined : lte(auditLog.at, new Date(query.until)),
        after ? lt(auditLog.id, after.id) : undefined,
      ),
    )
    .orderBy(desc(auditLog.id))
    .limit(query.limit + 1);
  return keysetPage(rows, query.limit, (last) => encodeCursor('audit', { id: last.id }));
}

/** A task's entries, oldest first, one keyset page at a time; the caller has checked the task is visible. */
export async function historyOf(
  ctx: ServiceContext,
  query: TaskHistoryQuery,
): Promise<{ items: AuditRow[]; nextCursor: string | null }> {
  const after = query.cursor ? decodeCursor(query.cursor, 'history') : null;
  const rows = await ctx.tx
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.taskId, query.id), after ? gt(auditLog.id, after.id) : undefined))
    .orderBy(auditLog.id)
    .limit(query.limit + 1);
  return keysetPage(rows, query.limit, (last) => encodeCursor('history', { id: last.id }));
}
