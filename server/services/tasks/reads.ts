import { and, eq, sql } from 'drizzle-orm';
import { tasks } from '../../../db/schema/index.js';
import type { TaskHistoryQuery } from '../../../shared/schemas/task.js';
import { notFound } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { perRole, reusableStatement } from '../reusable-statement.js';
import { taskVisibleToId } from '../visibility.js';
import { type TaskRow, taskColumns } from './rows.js';

const getStatement = perRole((admin) =>
  reusableStatement<TaskRow, { id: number; actorId: string }>(
    (db) =>
      db
        .select()
        .from(tasks)
        .where(
          and(
            eq(tasks.id, sql.placeholder('id')),
            admin ? undefined : taskVisibleToId(sql.placeholder('actorId')),
          ),
        ),
    taskColumns,
  ),
);

/** One task; 404 when it does not exist or the actor may not see it. */
export async function get(ctx: ServiceContext, input: { id: number }): Promise<TaskRow> {
  const [row] = await getStatement(ctx.actor)(ctx.tx, { id: input.id, actorId: ctx.actor.id });
  if (!row) throw notFound(`Task ${input.id} not found`);
  return row;
}

/** A task's audit entries, oldest first, a page at a time. */
export async function history(
  ctx: ServiceContext,
  input: TaskHistoryQuery,
): Promise<{ items: audit.AuditRow[]; nextCursor: string | null }> {
  await get(ctx, input);
  return audit.historyOf(ctx, input);
}
