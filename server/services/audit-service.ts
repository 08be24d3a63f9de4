import { and, desc, eq, gte, inArray, isNull, lt, lte, or, type SQL, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { auditLog, projectMembers, tasks } from '../../db/schema/index.js';
import type { AuditAction } from '../../shared/enums.js';
import type { AuditListQuery } from '../../shared/schemas/audit.js';
import type { Actor } from '../auth/actor.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { reusableStatement } from './reusable-statement.js';

export type AuditRow = typeof auditLog.$inferSelect;

export interface AuditRecord {
  action: AuditAction;
  taskId?: number | null;
  projectSlug?: string | null;
  context?: Record<string, unknown>;
}

const insertRecord = reusableStatement<unknown>((db) =>
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
export async function record(
  tx: Db,
  actor: Actor,
  requestId: string | null,
  entry: AuditRecord,
): Promise<void> {
  await insertRecord(tx, {
    actorId: actor.id,
    actorType: actor.type,
    action: entry.action,
    taskId: entry.taskId ?? null,
    projectSlug: entry.projectSlug ?? null,
    context: entry.context ?? {},
    requestId,
  });
}

/**
 * Rows an actor may read: admins all; others the rows of their projects, of project-less tasks they
 * can see (or acted on, for tasks since deleted), and their own project-less, task-less rows.
 */
export function auditVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  const myProjects = sql`(select ${projectMembers.projectSlug} from ${projectMembers} where ${projectMembers.workerId} = ${actor.id})`;
  const myLooseTasks = sql`(select ${tasks.id} from ${tasks} where ${tasks.projectSlug} is null and (${tasks.createdBy} = ${actor.id} or ${tasks.assignedTo} = ${actor.id}))`;
  return or(
    inArray(auditLog.projectSlug, myProjects),
    and(isNull(auditLog.projectSlug), inArray(auditLog.taskId, myLooseTasks)),
    and(isNull(auditLog.projectSlug), eq(auditLog.actorId, actor.id)),
  );
}

export async function list(
  db: Db,
  actor: Actor,
  query: AuditListQuery,
): Promise<{ items: AuditRow[]; nextCursor: string | null }> {
  const after = query.cursor ? decodeCursor(query.cursor, 'audit') : null;
  const rows = await db
    .select()
    .from(auditLog)
    .where(
      and(
        auditVisibleTo(actor),
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
  const items = rows.slice(0, query.limit);
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > query.limit && last ? encodeCursor('audit', { id: last.id }) : null,
  };
}

/** A task's entries, oldest first; the caller has checked the task is visible. */
export function historyOf(db: Db, taskId: number): Promise<AuditRow[]> {
  return db.select().from(auditLog).where(eq(auditLog.taskId, taskId)).orderBy(auditLog.id);
}
