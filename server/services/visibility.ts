import { and, eq, inArray, isNull, or, type Placeholder, type SQL, sql } from 'drizzle-orm';
import { projectMembers, projects, tasks } from '../../db/schema/index.js';
import type { Actor } from '../auth/actor.js';

// SPEC §7, once, in SQL: admins see everything; others see the tasks of projects they belong to and
// the project-less tasks they created or hold.

/** `actorId` may be a value or a placeholder of a prepared statement. */
function projectsOfId(actorId: string | Placeholder): SQL {
  return sql`(select ${projectMembers.projectSlug} from ${projectMembers} where ${projectMembers.workerId} = ${actorId})`;
}

export function taskVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return taskVisibleToId(actor.id);
}

/** The non-admin condition for the worker `actorId` (a value or a placeholder). */
export function taskVisibleToId(actorId: string | Placeholder): SQL {
  return or(
    inArray(tasks.projectSlug, projectsOfId(actorId)),
    and(isNull(tasks.projectSlug), or(eq(tasks.createdBy, actorId), eq(tasks.assignedTo, actorId))),
  ) as SQL;
}

export function projectVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return projectVisibleToId(actor.id);
}

/** The non-admin condition on projects for the worker `actorId` (a value or a placeholder). */
export function projectVisibleToId(actorId: string | Placeholder): SQL {
  return inArray(projects.slug, projectsOfId(actorId));
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

/** True when the actor owns the project of the task row in scope. */
export function ownsTaskProject(actor: Actor): SQL {
  return ownsTaskProjectId(actor.id);
}

/** `ownsTaskProject` for the worker `actorId` (a value or a placeholder). */
export function ownsTaskProjectId(actorId: string | Placeholder): SQL {
  return sql`exists (select 1 from project_members owner where owner.project_slug = ${outerTask.projectSlug} and owner.worker_id = ${actorId} and owner.role = 'owner')`;
}
