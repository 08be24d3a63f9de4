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

/** The visibility tags of `task_search_keys` (migration 0010) that the worker `actorId` holds. */
function searchTagsOf(actorId: ActorId): SQL {
  return sql`array(select 'p:' || ${projectMembers.projectSlug} from ${projectMembers} where ${projectMembers.workerId} = ${actorId}) || ('w:' || ${actorId})`;
}

/**
 * The tasks a worker's search for `q` may find: those carrying one of the worker's visibility tags
 * and every three-character piece of q, read tag by tag from `tasks_search_keys_idx`. So a search
 * reads no row the caller cannot see, and of the rows they can see only those that may match, however
 * many tasks other tenants have. The keys are hashes (a collision adds a candidate), so callers must
 * still apply `taskVisibleToId` and the ILIKE itself: those decide the answer.
 */
export function taskSearchCandidates(actorId: ActorId, q: string | Placeholder): SQL {
  return sql`${tasks.id} = any(array(select keyed.id from unnest(${searchTagsOf(actorId)}) tag, lateral (
    select id from ${tasks} keyed
    where task_search_keys(keyed.project_slug, keyed.created_by, keyed.assigned_to, keyed.title, keyed.description)
      @> task_search_query(tag, ${q})) keyed))`;
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
