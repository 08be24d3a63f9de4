import { and, eq, inArray, isNull, or, type Placeholder, type SQL, sql } from 'drizzle-orm';
import { auditLog, projectMembers, projects, tasks, workers } from '../../db/schema/index.js';
import type { Actor } from '../auth/actor.js';

// Who sees what, once, in SQL: admins see everything; others see the projects they belong to, the
// tasks of those projects, and the project-less tasks they created or hold. Every query that reads
// tasks, projects or the audit log is scoped here, in the database, never filtered afterwards.
// `actorId` may be a value or a placeholder of a statement built once (see reusable-statement.ts).

type ActorId = string | Placeholder;

function projectsOf(actorId: ActorId): SQL {
  return sql`(select ${projectMembers.projectSlug} from ${projectMembers} where ${projectMembers.workerId} = ${actorId})`;
}

/** A project-less task row the worker may see: they created or hold it. */
function ownLooseTask(actorId: ActorId): SQL {
  return or(eq(tasks.createdBy, actorId), eq(tasks.assignedTo, actorId)) as SQL;
}

export function taskVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return taskVisibleToId(actor.id);
}

/** The non-admin condition on tasks for the worker `actorId`. */
export function taskVisibleToId(actorId: ActorId): SQL {
  return or(
    inArray(tasks.projectSlug, projectsOf(actorId)),
    and(isNull(tasks.projectSlug), ownLooseTask(actorId)),
  ) as SQL;
}

/**
 * The same condition written so PostgreSQL can start from it: the member projects as an array the
 * planner reads through the project index (`= any(array(…))`, an InitPlan, where `in (subquery)`
 * becomes a filter checked on every row), and each project-less case on its own index. For queries
 * whose other conditions no index orders well (the text search), so the rows a caller cannot see are
 * never read.
 */
export function taskVisibleToIdIndexed(actorId: ActorId): SQL {
  return or(
    sql`${tasks.projectSlug} = any(array${projectsOf(actorId)})`,
    and(isNull(tasks.projectSlug), eq(tasks.createdBy, actorId)),
    and(isNull(tasks.projectSlug), eq(tasks.assignedTo, actorId)),
  ) as SQL;
}

export function projectVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return projectVisibleToId(actor.id);
}

/** The non-admin condition on projects for the worker `actorId`. */
export function projectVisibleToId(actorId: ActorId): SQL {
  return inArray(projects.slug, projectsOf(actorId));
}

/**
 * A worker's email as the actor may read it: admins and the worker themself always, others only when
 * they share a project with the worker; null otherwise (ids and names stay public, for assigning).
 */
export function workerEmailFor(actor: Actor): SQL<string | null> {
  if (actor.role === 'admin') return sql<string | null>`${workers.email}`;
  return sql<string | null>`case when ${workers.id} = ${actor.id} or exists (
    select 1 from ${projectMembers} mine join ${projectMembers} theirs using (project_slug)
    where mine.worker_id = ${actor.id} and theirs.worker_id = ${workers.id}) then ${workers.email} end`;
}

/**
 * Audit rows an actor may read: admins all; others the rows of their projects, of the project-less
 * tasks they can see, and their own project-less rows (about a task since deleted, or about no task).
 */
export function auditVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  const looseTasks = sql`(select ${tasks.id} from ${tasks} where ${isNull(tasks.projectSlug)} and ${ownLooseTask(actor.id)})`;
  return or(
    inArray(auditLog.projectSlug, projectsOf(actor.id)),
    and(
      isNull(auditLog.projectSlug),
      or(inArray(auditLog.taskId, looseTasks), eq(auditLog.actorId, actor.id)),
    ),
  );
}

/**
 * Columns of the outer `tasks` row for correlated subqueries, always table-qualified: in a select
 * list of a one-table query drizzle renders `${tasks.id}` without its table, and inside a subquery
 * that reads tasks or project_members the bare name binds to the inner table instead.
 */
export const outerTask = {
  id: sql.raw('"tasks"."id"'),
  projectSlug: sql.raw('"tasks"."project_slug"'),
} as const;

/** True when the worker `actorId` owns the project of the task row in scope. */
export function ownsTaskProject(actorId: ActorId): SQL {
  return sql`exists (select 1 from project_members owner where owner.project_slug = ${outerTask.projectSlug} and owner.worker_id = ${actorId} and owner.role = 'owner')`;
}
