import { and, eq, isNull, or, type Placeholder, type SQL, sql } from 'drizzle-orm';
import { tasks } from '../../../db/schema/index.js';
import {
  mayPerform,
  PERMISSIONS,
  type Relation,
  TASK_ACTIONS,
  type TaskOperation,
  type WorkflowActor,
} from '../../../shared/workflow.js';
import { type DomainError, forbidden, notFound } from '../../errors.js';
import type { ServiceContext } from '../context.js';
import { ownsTaskProject, taskVisibleTo } from '../visibility.js';
import { type TaskRow, taskColumns } from './rows.js';
import { openSubtaskCount } from './subtasks.js';

// Who may do what to a task is the table PERMISSIONS in shared/workflow.ts; here it becomes SQL.
// Statements check it in their WHERE clause, so a change and its permission check are one atomic
// step; the shared functions (`mayPerform`) are used only to explain a refusal afterwards.
// test/domain/permissions.test.ts compares the two on a real database.

/** `relation` as a condition on the task row in scope, for the worker `actorId` (a value or placeholder). */
function holds(relation: Exclude<Relation, 'admin'>, actorId: string | Placeholder): SQL {
  switch (relation) {
    case 'anyone':
      return or(isNull(tasks.assignedTo), eq(tasks.assignedTo, actorId)) as SQL;
    case 'assignee':
      return eq(tasks.assignedTo, actorId);
    case 'creator':
      return eq(tasks.createdBy, actorId);
    case 'projectOwner':
      return ownsTaskProject(actorId);
  }
}

/**
 * The condition under which the worker `actorId` may do `operation` to the task row in scope
 * (visibility is a separate condition). `admin` says whether the worker is an admin: statements are
 * built once per role, so it is known when the SQL is built. Undefined when nothing needs checking.
 */
export function permitted(
  operation: TaskOperation,
  admin: boolean,
  actorId: string | Placeholder,
): SQL | undefined {
  const who = PERMISSIONS[operation];
  if (admin && who.includes('admin')) return undefined;
  const conditions = who.flatMap((relation) => (relation === 'admin' ? [] : [holds(relation, actorId)]));
  return conditions.length > 0 ? or(...conditions) : sql`false`;
}

/** A task as the actor sees it, with what a refusal needs in order to say why. */
export interface Standing {
  task: TaskRow;
  who: WorkflowActor;
  openSubtasks: number;
}

/** Reads a task after a conditional statement changed nothing, to say why; 404 when it is not visible. */
export async function standing(ctx: ServiceContext, id: number): Promise<Standing> {
  const { tx, actor } = ctx;
  const [found] = await tx
    .select({
      ...taskColumns,
      ownsProject: ownsTaskProject(actor.id).mapWith(Boolean),
      openSubtasks: openSubtaskCount,
    })
    .from(tasks)
    .where(and(eq(tasks.id, id), taskVisibleTo(actor)));
  if (!found) throw notFound(`Task ${id} not found`);
  const { ownsProject, openSubtasks: open, ...task } = found;
  return { task, who: { id: actor.id, role: actor.role, isProjectOwner: ownsProject }, openSubtasks: open };
}

// How refusals name the relations: a workflow refusal reads "Only the assignee, project owner or an
// admin may complete task 7", the others "Only the creator, the assignee, a project owner or an
// admin may edit this task".
const ACTION_NAMES: Record<Relation, string> = {
  anyone: 'anyone who can see it',
  assignee: 'assignee',
  creator: 'creator',
  projectOwner: 'project owner',
  admin: 'an admin',
};
const NAMES: Record<Relation, string> = {
  anyone: 'anyone who can see it',
  assignee: 'the assignee',
  creator: 'the creator',
  projectOwner: 'a project owner',
  admin: 'an admin',
};

function oneOf(names: string[]): string {
  return names.length > 1 ? `${names.slice(0, -1).join(', ')} or ${names.at(-1)}` : (names[0] ?? '');
}

const isAction = (operation: TaskOperation) => (TASK_ACTIONS as readonly string[]).includes(operation);

/** Throws 403 naming who may, when the actor's standing does not allow the operation. */
export function assertPermitted(operation: TaskOperation, { task, who }: Standing, verb: string): void {
  if (mayPerform(operation, task, who)) return;
  throw notPermitted(operation, task, verb);
}

function notPermitted(operation: TaskOperation, task: TaskRow, verb: string): DomainError {
  const relations = PERMISSIONS[operation];
  if (relations.includes('anyone')) {
    return forbidden(`Task ${task.id} is assigned to ${task.assignedTo}`, 'ALREADY_CLAIMED');
  }
  // Operations only the holder (or an admin) may do say so, so an agent knows the task is not its.
  const holderOnly = relations.every((relation) => relation === 'assignee' || relation === 'admin');
  const reason = holderOnly ? 'NOT_ASSIGNEE' : 'NOT_PERMITTED';
  if (isAction(operation)) {
    return forbidden(
      `Only the ${oneOf(relations.map((r) => ACTION_NAMES[r]))} may ${verb} task ${task.id}`,
      reason,
    );
  }
  return forbidden(`Only ${oneOf(relations.map((r) => NAMES[r]))} may ${verb} this task`, reason);
}
