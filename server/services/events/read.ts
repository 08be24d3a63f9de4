import { and, asc, eq, gt, inArray, lte, type SQL } from 'drizzle-orm';
import type { Db } from '../../../db/client.js';
import { auditLog } from '../../../db/schema/index.js';
import type { Actor } from '../../auth/actor.js';
import type { AuditRow } from '../audit-service.js';
import { type TaskRow, taskColumns } from '../tasks/rows.js';
import { auditVisibleTo } from '../visibility.js';

/** An audit row with the task as its change left it. */
export interface EventRow {
  entry: AuditRow;
  task: TaskRow | null;
}

export interface EventRange {
  /** Exclusive. */
  after: number;
  /** Inclusive: a settled id (see Horizon), so nothing below it can still appear. */
  upTo: number;
  project?: string | undefined;
  taskId?: number | undefined;
  limit: number;
}

const snakeCase = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
// The snapshot is `to_jsonb` of the tasks row: column names, and values as PostgreSQL prints them.
const snapshotFields = Object.entries(taskColumns).map(([key, column]) => ({
  key,
  name: snakeCase(key),
  column,
}));

function taskOf(snapshot: Record<string, unknown> | null): TaskRow | null {
  if (!snapshot) return null;
  const row: Record<string, unknown> = {};
  for (const { key, name, column } of snapshotFields) {
    const value = snapshot[name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as TaskRow;
}

/**
 * The events in `(after, upTo]` the actor may see now, oldest first: visibility is the audit log's,
 * checked at every read, so a worker removed from a project stops receiving its events at once.
 */
export function readEvents(db: Db, actor: Actor, range: EventRange): Promise<EventRow[]> {
  return readWhere(
    db,
    range,
    and(
      auditVisibleTo(actor),
      range.project === undefined ? undefined : eq(auditLog.projectSlug, range.project),
      range.taskId === undefined ? undefined : eq(auditLog.taskId, range.taskId),
    ),
  );
}

/** Every event in `(after, upTo]`, oldest first, whoever may see it: what the shared reader hands out. */
export function readAllEvents(db: Db, range: Omit<EventRange, 'project' | 'taskId'>): Promise<EventRow[]> {
  return readWhere(db, range, undefined);
}

async function readWhere(db: Db, range: EventRange, where: SQL | undefined): Promise<EventRow[]> {
  const rows = await db
    .select()
    .from(auditLog)
    .where(and(gt(auditLog.id, range.after), lte(auditLog.id, range.upTo), where))
    .orderBy(asc(auditLog.id))
    .limit(range.limit);
  return rows.map((row) => ({ entry: row, task: taskOf(row.task ?? null) }));
}

/** Events by id, without a visibility check: for webhooks, which send what their endpoint subscribed to. */
export async function readEventsById(db: Db, ids: number[]): Promise<Map<number, EventRow>> {
  if (ids.length === 0) return new Map();
  const rows = await db.select().from(auditLog).where(inArray(auditLog.id, ids));
  return new Map(rows.map((row) => [row.id, { entry: row, task: taskOf(row.task ?? null) }]));
}
