import { and, eq, inArray, isNull, or, type SQL, sql } from 'drizzle-orm';
import { projectMembers, projects, tasks } from '../../db/schema/index.js';
import type { Actor } from '../auth/actor.js';

// SPEC §7, once, in SQL: admins see everything; others see the tasks of projects they belong to and
// the project-less tasks they created or hold.

export function projectsOf(actor: Actor): SQL {
  return sql`(select ${projectMembers.projectSlug} from ${projectMembers} where ${projectMembers.workerId} = ${actor.id})`;
}

export function taskVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return or(
    inArray(tasks.projectSlug, projectsOf(actor)),
    and(isNull(tasks.projectSlug), or(eq(tasks.createdBy, actor.id), eq(tasks.assignedTo, actor.id))),
  );
}

export function projectVisibleTo(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return inArray(projects.slug, projectsOf(actor));
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
  return sql`exists (select 1 from project_members owner where owner.project_slug = ${outerTask.projectSlug} and owner.worker_id = ${actor.id} and owner.role = 'owner')`;
}
