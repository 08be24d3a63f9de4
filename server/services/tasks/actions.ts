import { and, eq, inArray, type SQL, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { tasks } from '../../../db/schema/index.js';
import type { AuditAction } from '../../../shared/enums.js';
import type {
  TaskActionInput,
  TaskBlockInput,
  TaskHeartbeatInput,
  TaskProgressInput,
  TaskReleaseInput,
  TaskStartInput,
} from '../../../shared/schemas/task.js';
import { legalActions, TASK_ACTIONS, type TaskAction, WORKFLOW } from '../../../shared/workflow.js';
import type { Actor } from '../../auth/actor.js';
import { DEFAULT_AGENT_LEASE_SECONDS } from '../../config.js';
import { conflict, type DomainError } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { perRole, reusableStatement } from '../reusable-statement.js';
import { taskVisibleToId } from '../visibility.js';
import { lostToExpiry } from './leases.js';
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
  Partial<Pick<TaskBlockInput, 'reason'>> &
  Partial<Pick<TaskStartInput, 'leaseSeconds'>>;

/** The values a statement is run with: the input, the actor and the lease a claim takes. */
type ActionValues = Omit<ActionInput, 'leaseSeconds'> & { actorId: string; leaseSeconds: number | null };

/** The row as it was before the action. */
interface Before {
  status: TaskRow['status'];
  progressPercent: number;
  assignedTo: string | null;
}

interface Effect {
  /** How refusals name the action: "Cannot {verb} task 7". */
  verb: string;
  /** The audit row's action; null for what is not audited (a heartbeat). */
  audit: AuditAction | null;
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

const placeholder = (name: keyof ActionValues) => sql`${sql.placeholder(name)}`;

// Leases. A claim takes `leaseSeconds` (null: no lease); progress renews the lease by its own length,
// a heartbeat by the length it names or else the same; leaving in_progress ends it. An expired lease
// is never honoured: the holder's actions are refused (see `leaseLive`) even before the sweeper ran.
const claimLease = sql`${placeholder('leaseSeconds')}::int`;
const renewedLease = (seconds: SQL) => sql`now() + make_interval(secs => ${seconds})`;
const heartbeatLease = sql`coalesce(${claimLease}, ${tasks.leaseSeconds})`;
const noLease = { leaseExpiresAt: null, leaseSeconds: null } as const;

/** False for a task in progress whose lease has passed: it is nobody's any more. */
const leaseLive = sql`(${tasks.status} <> 'in_progress' or ${tasks.leaseExpiresAt} is null or ${tasks.leaseExpiresAt} > now())`;

const EFFECTS: Record<TaskAction, Effect> = {
  start: {
    verb: 'start',
    audit: 'started',
    set: {
      status: 'in_progress',
      assignedTo: placeholder('actorId'),
      leaseSeconds: claimLease,
      leaseExpiresAt: renewedLease(claimLease),
    },
  },
  progress: {
    verb: 'record progress on',
    audit: 'progressed',
    set: {
      progressPercent: placeholder('percent'),
      leaseExpiresAt: renewedLease(sql`${tasks.leaseSeconds}`),
    },
    context: (input, before, task) => ({
      before: before.progressPercent,
      percent: task.progressPercent,
      ...(input.note ? { note: input.note } : {}),
    }),
  },
  submitForReview: {
    verb: 'submit for review',
    audit: 'submitted',
    set: { status: 'review', ...noLease },
  },
  complete: {
    verb: 'complete',
    audit: 'completed',
    set: { status: 'completed', progressPercent: 100, completedAt: sql`now()`, ...noLease },
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
    set: { status: 'blocked', blockedReason: placeholder('reason'), ...noLease },
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
  heartbeat: {
    verb: 'heartbeat',
    audit: null,
    set: { leaseSeconds: heartbeatLease, leaseExpiresAt: renewedLease(heartbeatLease) },
  },
  release: {
    verb: 'release',
    audit: 'released',
    set: { status: 'pending', assignedTo: null, ...noLease },
    context: (input, before) => ({
      assignee: before.assignedTo,
      ...(input.reason ? { reason: input.reason } : {}),
    }),
  },
};

// The row as it was before the UPDATE, from its FROM subquery named "prev".
const actReturning = {
  ...taskColumns,
  prev_status: sql<TaskRow['status']>`"prev"."status"`,
  prev_progress: sql<number>`"prev"."progress_percent"`,
  prev_assigned_to: sql<string | null>`"prev"."assigned_to"`,
};
type ActedRow = TaskRow & {
  prev_status: TaskRow['status'];
  prev_progress: number;
  prev_assigned_to: string | null;
};

/** The conditional UPDATE of one action for admins or for everyone else. */
function buildAct(action: TaskAction, admin: boolean) {
  const effect = EFFECTS[action];
  return reusableStatement<ActedRow, ActionValues>((db) => {
    const prev = db
      .select({
        id: tasks.id,
        version: tasks.version,
        status: tasks.status,
        progressPercent: tasks.progressPercent,
        assignedTo: tasks.assignedTo,
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
          // A release by an owner or admin is what the sweeper would do anyway.
          action === 'release' ? undefined : leaseLive,
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
  const [row] = await actStatements[action](ctx.actor)(ctx.tx, {
    ...input,
    actorId: ctx.actor.id,
    leaseSeconds: input.leaseSeconds ?? (action === 'start' ? defaultLease(ctx) : null),
  });
  if (!row) return explainRefusal(ctx, action, input.id);
  const { prev_status, prev_progress, prev_assigned_to, ...task } = row;
  if (!effect.audit) return task;
  const before = { status: prev_status, progressPercent: prev_progress, assignedTo: prev_assigned_to };
  await audit.record(ctx, {
    action: effect.audit,
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { from: prev_status, to: task.status, ...effect.context?.(input, before, task) },
  });
  return task;
}

/** The lease of a claim that names none: an agent's default; a person's claim has none. */
export function defaultLease(ctx: ServiceContext): number | null {
  return ctx.actor.type === 'agent' ? (ctx.agentLeaseSeconds ?? DEFAULT_AGENT_LEASE_SECONDS) : null;
}

async function explainRefusal(ctx: ServiceContext, action: TaskAction, id: number): Promise<TaskRow> {
  const now = await standing(ctx, id);
  const { task, who } = now;
  const effect = EFFECTS[action];
  const holderLost =
    task.assignedTo === ctx.actor.id
      ? action !== 'release' && leaseExpired(task)
      : HOLDER_ACTIONS.has(action) && (await lostToExpiry(ctx, id));
  if (holderLost) {
    throw conflict(`Your lease on task ${id} expired; claim it again if it is still free`, 'LEASE_EXPIRED');
  }
  if (!WORKFLOW[action].from.includes(task.status)) {
    const legal = legalActions(task, who);
    const why = `Cannot ${effect.verb} task ${id}: it is ${task.status}; legal actions: ${legal.length ? legal.join(', ') : 'none'}`;
    throw action === 'start' && task.status === 'in_progress' && task.assignedTo !== null
      ? claimRefusal(task, ctx.actor, why)
      : conflict(why, 'ILLEGAL_TRANSITION');
  }
  assertPermitted(action, now, effect.verb);
  if (action !== 'release' && leaseExpired(task)) {
    throw conflict(`The lease on task ${id} expired; it is free to claim`, 'LEASE_EXPIRED');
  }
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

/** What the holder of a task does: refused with LEASE_EXPIRED to a former holder whose lease lapsed. */
const HOLDER_ACTIONS = new Set<TaskAction>([
  'progress',
  'heartbeat',
  'submitForReview',
  'complete',
  'block',
  'release',
]);

function leaseExpired(task: TaskRow): boolean {
  return task.status === 'in_progress' && task.leaseExpiresAt !== null && task.leaseExpiresAt <= new Date();
}

export const start = action<TaskStartInput>('start');
export const progress = action<TaskProgressInput>('progress');
export const submitForReview = action<TaskActionInput>('submitForReview');
export const complete = action<TaskActionInput>('complete');
export const block = action<TaskBlockInput>('block');
export const unblock = action<TaskActionInput>('unblock');
export const reopen = action<TaskActionInput>('reopen');
export const heartbeat = action<TaskHeartbeatInput>('heartbeat');
export const release = action<TaskReleaseInput>('release');
