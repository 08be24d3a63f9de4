import { and, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { tasks } from '../../../db/schema/index.js';
import type { AuditAction } from '../../../shared/enums.js';
import type { TaskActionInput, TaskBlockInput, TaskProgressInput } from '../../../shared/schemas/task.js';
import { legalActions, TASK_ACTIONS, type TaskAction, WORKFLOW } from '../../../shared/workflow.js';
import type { Actor } from '../../auth/actor.js';
import { conflict, type DomainError } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { perRole, reusableStatement } from '../reusable-statement.js';
import { taskVisibleToId } from '../visibility.js';
import { assertPermitted, permitted, type Standing, standing } from './permissions.js';
import { type TaskRow, taskColumns } from './rows.js';
import { lockForSubtaskCheck, openSubtaskCount } from './subtasks.js';

// The workflow actions. Which status an action is legal from and who may perform it are the tables
// of shared/workflow.ts; what an action does is its entry in EFFECTS below. Each action is one
// conditional UPDATE built from both (per role, once), so status, permission, visibility and the
// row version are checked by the database and of concurrent callers exactly one can win.

/** What a workflow action may carry besides the task id; each field is a placeholder of its name. */
type ActionInput = TaskActionInput &
  Partial<Pick<TaskProgressInput, 'percent' | 'note'>> &
  Partial<Pick<TaskBlockInput, 'reason'>>;

/** The row as it was before the action. */
interface Before {
  status: TaskRow['status'];
  progressPercent: number;
}

interface Effect {
  /** How refusals name the action: "Cannot {verb} task 7". */
  verb: string;
  /** The audit row's action. */
  audit: AuditAction;
  /** The columns it sets: SQL may use the placeholders `actorId` and those of the action's input. */
  set: PgUpdateSetSource<typeof tasks>;
  /** A further condition on the row, beyond status, permission and visibility. */
  where?: SQL;
  /** `where` reads the task's subtasks, so the row is locked first (see `lockForSubtaskCheck`). */
  readsSubtasks?: boolean;
  /** What the audit row's context holds besides `{ from, to }`. */
  context?: (input: ActionInput, before: Before, task: TaskRow) => Record<string, unknown>;
  /** Why the action was refused when status and permission allow it (what `where` checks). */
  refusal?: (standing: Standing) => DomainError | undefined;
}

const placeholder = (name: keyof ActionInput | 'actorId') => sql`${sql.placeholder(name)}`;

const EFFECTS: Record<TaskAction, Effect> = {
  start: {
    verb: 'start',
    audit: 'started',
    set: { status: 'in_progress', assignedTo: placeholder('actorId') },
  },
  progress: {
    verb: 'record progress on',
    audit: 'progressed',
    set: { progressPercent: placeholder('percent') },
    context: (input, before, task) => ({
      before: before.progressPercent,
      percent: task.progressPercent,
      ...(input.note ? { note: input.note } : {}),
    }),
  },
  submitForReview: { verb: 'submit for review', audit: 'submitted', set: { status: 'review' } },
  complete: {
    verb: 'complete',
    audit: 'completed',
    set: { status: 'completed', progressPercent: 100, completedAt: sql`now()` },
    where: sql`${openSubtaskCount} = 0`,
    readsSubtasks: true,
    refusal: ({ task, openSubtasks }) =>
      openSubtasks > 0
        ? conflict(
            `Cannot complete task ${task.id}: ${openSubtasks} subtask(s) are still open`,
            'OPEN_SUBTASKS',
          )
        : undefined,
  },
  block: {
    verb: 'block',
    audit: 'blocked',
    set: { status: 'blocked', blockedReason: placeholder('reason') },
    context: (input) => ({ reason: input.reason }),
  },
  unblock: {
    verb: 'unblock',
    audit: 'unblocked',
    set: {
      status: sql`(case when ${tasks.assignedTo} is null then 'pending' else 'in_progress' end)::task_status`,
      blockedReason: null,
    },
  },
  reopen: { verb: 'reopen', audit: 'reopened', set: { status: 'pending', completedAt: null } },
};

// The row as it was before the UPDATE, from its FROM subquery named "prev".
const actReturning = {
  ...taskColumns,
  prev_status: sql<TaskRow['status']>`"prev"."status"`,
  prev_progress: sql<number>`"prev"."progress_percent"`,
};
type ActedRow = TaskRow & { prev_status: TaskRow['status']; prev_progress: number };

/** The conditional UPDATE of one action for admins or for everyone else. */
function buildAct(action: TaskAction, admin: boolean) {
  const effect = EFFECTS[action];
  return reusableStatement<ActedRow, ActionInput & { actorId: string }>((db) => {
    const prev = db
      .select({
        id: tasks.id,
        version: tasks.version,
        status: tasks.status,
        progressPercent: tasks.progressPercent,
      })
      .from(tasks)
      .where(eq(tasks.id, sql.placeholder('id')))
      .as('prev');
    const actorId = sql.placeholder('actorId');
    return db
      .update(tasks)
      .set({ ...effect.set, version: sql`${tasks.version} + 1`, updatedAt: sql`now()` })
      .from(prev)
      .where(
        and(
          eq(tasks.id, prev.id),
          eq(tasks.version, prev.version),
          inArray(tasks.status, [...WORKFLOW[action].from]),
          admin ? undefined : taskVisibleToId(actorId),
          permitted(action, admin, actorId),
          effect.where,
        ),
      )
      .returning(actReturning);
  }, actReturning);
}

const actStatements = Object.fromEntries(
  TASK_ACTIONS.map((action) => [action, perRole((admin) => buildAct(action, admin))]),
) as Record<TaskAction, (actor: Actor) => ReturnType<typeof buildAct>>;

/** Applies a workflow action; when nothing was updated, the row is read again only to say why. */
async function perform(ctx: ServiceContext, action: TaskAction, input: ActionInput): Promise<TaskRow> {
  const effect = EFFECTS[action];
  if (effect.readsSubtasks) await lockForSubtaskCheck(ctx, input.id, 'no key update');
  const [row] = await actStatements[action](ctx.actor)(ctx.tx, { ...input, actorId: ctx.actor.id });
  if (!row) return explainRefusal(ctx, action, input.id);
  const { prev_status, prev_progress, ...task } = row;
  await audit.record(ctx, {
    action: effect.audit,
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: {
      from: prev_status,
      to: task.status,
      ...effect.context?.(input, { status: prev_status, progressPercent: prev_progress }, task),
    },
  });
  return task;
}

async function explainRefusal(ctx: ServiceContext, action: TaskAction, id: number): Promise<TaskRow> {
  const now = await standing(ctx, id);
  const { task, who } = now;
  const effect = EFFECTS[action];
  if (!WORKFLOW[action].from.includes(task.status)) {
    const legal = legalActions(task, who);
    const why = `Cannot ${effect.verb} task ${id}: it is ${task.status}; legal actions: ${legal.length ? legal.join(', ') : 'none'}`;
    throw action === 'start' && task.status === 'in_progress' && task.assignedTo !== null
      ? claimRefusal(task, ctx.actor, why)
      : conflict(why, 'ILLEGAL_TRANSITION');
  }
  assertPermitted(action, now, effect.verb);
  const refusal = effect.refusal?.(now);
  if (refusal) throw refusal;
  throw conflict(`Task ${id} changed concurrently; retry`, 'CONCURRENT_CHANGE');
}

/**
 * A claim of a task in progress. Even by its holder it is refused: two replicas of one agent
 * identity must not both believe they won. A holder retrying a claim whose answer was lost sends the
 * same idempotency key and gets the first answer before this is reached.
 */
function claimRefusal(task: TaskRow, actor: Actor, why: string): DomainError {
  return task.assignedTo === actor.id
    ? conflict(`${why} (you hold it already: retry a lost claim with its idempotency key)`, 'ALREADY_HELD')
    : conflict(`${why} (claimed by ${task.assignedTo})`, 'ALREADY_CLAIMED');
}

const action =
  <I extends ActionInput>(name: TaskAction) =>
  (ctx: ServiceContext, input: I): Promise<TaskRow> =>
    perform(ctx, name, input);

export const start = action<TaskActionInput>('start');
export const progress = action<TaskProgressInput>('progress');
export const submitForReview = action<TaskActionInput>('submitForReview');
export const complete = action<TaskActionInput>('complete');
export const block = action<TaskBlockInput>('block');
export const unblock = action<TaskActionInput>('unblock');
export const reopen = action<TaskActionInput>('reopen');
