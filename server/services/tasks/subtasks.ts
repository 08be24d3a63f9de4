import { and, eq, sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../../../db/client.js';
import { tasks } from '../../../db/schema/index.js';
import { conflict, forbidden, invalid, notFound } from '../../errors.js';
import type { ServiceContext } from '../context.js';
import { perRole, reusableStatement } from '../reusable-statement.js';
import { outerTask, taskVisibleTo, taskVisibleToId } from '../visibility.js';

// The task tree: a subtask's parent is visible, in the same project and open; no cycles; a parent
// does not complete while a subtask is open, nor is it deleted while it has any. Without a project, a
// subtask has its parent's creator as its own: whoever a subtask can block must always see it.

/** How many subtasks of the task row in scope are not completed. */
export const openSubtaskCount = sql<number>`(select count(*)::int from tasks child where child.parent_id = ${outerTask.id} and child.status <> 'completed')`;

/** SQL true while the task row in scope has any subtask. */
export const hasSubtasks = sql`exists (select 1 from tasks child where child.parent_id = ${outerTask.id})`;

/**
 * The parent must be visible, in the same project and open; it is locked so it cannot complete
 * meanwhile. `childCreator` is who created (or creates) the subtask: under a parent without a
 * project it must be the parent's creator, who could not see anyone else's subtask.
 */
export async function assertParent(
  ctx: ServiceContext,
  parentId: number,
  projectSlug: string | null,
  childCreator: string,
): Promise<void> {
  const [parent] = await ctx.tx
    .select({ projectSlug: tasks.projectSlug, status: tasks.status, createdBy: tasks.createdBy })
    .from(tasks)
    .where(and(eq(tasks.id, parentId), taskVisibleTo(ctx.actor)))
    .for('share');
  if (!parent) throw notFound(`Parent task ${parentId} not found`);
  if (parent.projectSlug !== projectSlug) throw invalid('parentId must be a task of the same project');
  if (parent.status === 'completed')
    throw conflict(`Parent task ${parentId} is completed; reopen it first`, 'PARENT_COMPLETED');
  if (parent.projectSlug === null && parent.createdBy !== childCreator) {
    throw forbidden(`Only the creator of task ${parentId} may add subtasks to it (it has no project)`);
  }
}

export async function assertNoCycle(tx: Db, id: number, parentId: number): Promise<void> {
  if (parentId === id) throw invalid('a task cannot be its own parent');
  // Tree changes are serialised, so two concurrent re-parentings cannot close a loop together.
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext('taskflow.task-tree'))`);
  const result = await tx.execute(sql`
    with recursive ancestors(id, parent_id) as (
      select id, parent_id from tasks where id = ${parentId}
      union
      select t.id, t.parent_id from tasks t join ancestors a on t.id = a.parent_id
    )
    select 1 as hit from ancestors where id = ${id} limit 1`);
  if (rowsOf(result).length > 0) throw invalid('parentId would make a cycle');
}

export { rowsOf };

export type LockStrength = 'update' | 'no key update';

function buildLock(strength: LockStrength, admin: boolean) {
  return reusableStatement<unknown, { id: number; actorId: string }>((db) =>
    db
      .select({ id: tasks.id })
      .from(tasks)
      .where(
        and(
          eq(tasks.id, sql.placeholder('id')),
          admin ? undefined : taskVisibleToId(sql.placeholder('actorId')),
        ),
      )
      .for(strength),
  );
}
export const lockStatements = {
  update: perRole((admin) => buildLock('update', admin)),
  'no key update': perRole((admin) => buildLock('no key update', admin)),
};

/**
 * Locks a task row before a statement whose condition reads *other* rows (its subtasks). A subtask
 * being created holds its parent FOR SHARE until it commits; taking the lock in a statement of its
 * own makes the next statement's snapshot include that subtask. Without it, the UPDATE or DELETE
 * would wait for the same lock with a snapshot taken before the subtask existed, and go ahead.
 */
export async function lockForSubtaskCheck(ctx: ServiceContext, id: number, strength: LockStrength) {
  await lockStatements[strength](ctx.actor)(ctx.tx, { id, actorId: ctx.actor.id });
}
