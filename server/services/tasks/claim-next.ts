import { and, eq, type SQL, sql } from 'drizzle-orm';
import { LRUCache } from 'lru-cache';
import { projectMembers, tasks } from '../../../db/schema/index.js';
import type { TaskClaimNextInput } from '../../../shared/schemas/task.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { reusableStatement } from '../reusable-statement.js';
import { defaultLease } from './actions.js';
import { sweepExpiredLeases } from './leases.js';
import { type TaskRow, taskColumns } from './rows.js';

// The work queue: the first task the caller can do, claimed in one statement. Rows are picked and
// locked with FOR UPDATE SKIP LOCKED, so concurrent callers pass over each other's picks instead of
// waiting for them or getting the same one; a row changed by a caller that committed meanwhile is
// checked again against the conditions and skipped if it no longer qualifies.
//
// A member's claim reads the queue of each project they belong to (tasks_claimable_project_idx, in
// the queue's order) and their own project-less tasks, takes the first row of each and keeps the
// best: it never walks past other tenants' tasks, which in one queue over every project cost a
// read per invisible task ahead of the caller's first (milliseconds per claim on a board of
// 100 000). The runners-up stay locked until the claim commits, so a concurrent claim takes the
// next row of that project, as SKIP LOCKED does anyway. Admins see every task: one ordered read of
// tasks_claimable_idx.

/** Lapsed leases a claim returns to the queue first (the sweeper takes care of the rest). */
const SWEEP_ON_CLAIM = 20;

/** What a claim statement is made of besides its values: one prepared statement per shape. */
interface ClaimShape {
  admin: boolean;
  project: boolean;
  labels: number;
  minPriority: boolean;
}

const p = sql.placeholder;
const queueOrder = sql`${tasks.priority} desc nulls last, ${tasks.dueDate} asc nulls last, ${tasks.createdAt}, ${tasks.id}`;
const pickedOrder = sql`picked.priority desc nulls last, picked.due_date asc nulls last, picked.created_at, picked.id`;

/**
 * Pending, unassigned, every required capability among the worker's, the filters, parent not blocked.
 * The capability test is a CASE for the planner's sake: `<@` against a value it cannot see is
 * estimated to keep 0.5 % of rows, so it would believe a project's queue holds next to nothing
 * claimable and sort all of it rather than read the index in order up to the first match.
 */
function claimable(shape: ClaimShape): SQL {
  const capabilities = sql`coalesce((select w.capabilities from workers w where w.id = ${p('actorId')}), '{}'::text[])`;
  const labels = Array.from({ length: shape.labels }, (_, i) => p(`label${i}`));
  return and(
    // Literal, not a parameter: it is the predicate of the claimable indexes, which a generic plan
    // may use only when the statement itself implies it.
    sql`${tasks.status} = 'pending' and ${tasks.assignedTo} is null`,
    sql`(case when ${tasks.requiredCapabilities} = '{}' then true else ${tasks.requiredCapabilities} <@ ${capabilities} end)`,
    shape.labels ? sql`${tasks.labels} @> array[${sql.join(labels, sql`, `)}]::text[]` : undefined,
    shape.minPriority ? sql`${tasks.priority} >= ${p('minPriority')}::task_priority` : undefined,
    sql`not exists (select 1 from tasks parent where parent.id = ${tasks.parentId} and parent.status = 'blocked')`,
  ) as SQL;
}

/** The first claimable row where `where` holds, locked; rows other claims hold are passed over. */
function firstOf(shape: ClaimShape, where: SQL): SQL {
  return sql`select ${tasks.id}, ${tasks.priority}, ${tasks.dueDate}, ${tasks.createdAt} from ${tasks}
    where ${claimable(shape)} and ${where} order by ${queueOrder} limit 1 for update skip locked`;
}

/** The id of the task to claim, as a scalar subquery. */
function pick(shape: ClaimShape): SQL {
  if (shape.admin) {
    return sql`(select picked.id from (${firstOf(shape, shape.project ? eq(tasks.projectSlug, p('project')) : sql`true`)}) picked)`;
  }
  const memberOf = sql`select ${projectMembers.projectSlug} from ${projectMembers}
    where ${projectMembers.workerId} = ${p('actorId')}${shape.project ? sql` and ${projectMembers.projectSlug} = ${p('project')}` : sql``}`;
  const inProjects = sql`select head.* from (${memberOf}) mine
    cross join lateral (${firstOf(shape, sql`${tasks.projectSlug} = mine.project_slug`)}) head`;
  const own = sql`select * from (${firstOf(shape, sql`${tasks.projectSlug} is null and ${tasks.createdBy} = ${p('actorId')}`)}) own`;
  return sql`(select picked.id from (${inProjects}${shape.project ? sql`` : sql` union all ${own}`}) picked
    order by ${pickedOrder} limit 1)`;
}

function buildClaim(shape: ClaimShape) {
  const lease = sql`${p('leaseSeconds')}::int`;
  return reusableStatement<TaskRow, Record<string, unknown>>(
    (db) =>
      db
        .update(tasks)
        .set({
          status: 'in_progress',
          assignedTo: sql`${p('actorId')}`,
          leaseSeconds: lease,
          leaseExpiresAt: sql`now() + make_interval(secs => ${lease})`,
          version: sql`${tasks.version} + 1`,
          updatedAt: sql`now()`,
        })
        .where(eq(tasks.id, pick(shape)))
        .returning(taskColumns),
    taskColumns,
  );
}

const claimStatements = new LRUCache<string, ReturnType<typeof buildClaim>, ClaimShape>({
  max: 100,
  memoMethod: (_key, _stale, { context }) => buildClaim(context),
});

/** Claims the next matching task for the caller, or answers null when none is free. */
export async function claimNext(ctx: ServiceContext, input: TaskClaimNextInput): Promise<TaskRow | null> {
  const { tx, actor } = ctx;
  await sweepExpiredLeases(tx, SWEEP_ON_CLAIM);
  const shape: ClaimShape = {
    admin: actor.role === 'admin',
    project: input.project !== undefined,
    labels: input.labels?.length ?? 0,
    minPriority: input.minPriority !== undefined,
  };
  const values: Record<string, unknown> = {
    actorId: actor.id,
    leaseSeconds: input.leaseSeconds ?? defaultLease(ctx),
    project: input.project,
    minPriority: input.minPriority,
  };
  input.labels?.forEach((label, i) => {
    values[`label${i}`] = label;
  });
  const [task] = await claimStatements.memo(JSON.stringify(shape), { context: shape })(tx, values);
  if (!task) return null;
  await audit.record(ctx, {
    action: 'started',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { from: 'pending', to: 'in_progress', via: 'claimNext' },
  });
  return task;
}
