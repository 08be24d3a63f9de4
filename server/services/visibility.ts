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

/** True when the actor owns the project of the task row in scope. */
export function ownsTaskProject(actor: Actor): SQL {
  return sql`exists (select 1 from ${projectMembers} where ${projectMembers.projectSlug} = ${tasks.projectSlug} and ${projectMembers.workerId} = ${actor.id} and ${projectMembers.role} = 'owner')`;
}
