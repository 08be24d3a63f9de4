import { and, arrayContains, eq, gte, isNull, sql } from 'drizzle-orm';
import { tasks } from '../../../db/schema/index.js';
import type { TaskClaimNextInput } from '../../../shared/schemas/task.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { taskVisibleTo } from '../visibility.js';
import { defaultLease } from './actions.js';
import { sweepExpiredLeases } from './leases.js';
import { type TaskRow, taskColumns } from './rows.js';

// The work queue: the first task the caller can do, claimed in one statement. The row is picked and
// locked with FOR UPDATE SKIP LOCKED, so concurrent callers pass over each other's picks instead of
// waiting for them or getting the same one; a row changed by a caller that committed meanwhile is
// checked again against the conditions and skipped if it no longer qualifies.

/** Lapsed leases a claim returns to the queue first (the sweeper takes care of the rest). */
const SWEEP_ON_CLAIM = 20;

const parentNotBlocked = sql`not exists (select 1 from tasks parent where parent.id = "tasks"."parent_id" and parent.status = 'blocked')`;

/** Claims the next matching task for the caller, or answers null when none is free. */
export async function claimNext(ctx: ServiceContext, input: TaskClaimNextInput): Promise<TaskRow | null> {
  const { tx, actor } = ctx;
  await sweepExpiredLeases(tx, SWEEP_ON_CLAIM);
  const leaseSeconds = input.leaseSeconds ?? defaultLease(ctx);
  const picked = tx.$with('picked').as(
    tx
      .select({ id: tasks.id })
      .from(tasks)
      .where(
        and(
          eq(tasks.status, 'pending'),
          isNull(tasks.assignedTo),
          taskVisibleTo(actor),
          sql`${tasks.requiredCapabilities} <@ coalesce((select w.capabilities from workers w where w.id = ${actor.id}), '{}'::text[])`,
          input.project === undefined ? undefined : eq(tasks.projectSlug, input.project),
          input.labels?.length ? arrayContains(tasks.labels, input.labels) : undefined,
          input.minPriority === undefined ? undefined : gte(tasks.priority, input.minPriority),
          parentNotBlocked,
        ),
      )
      // The order of tasks_claimable_idx: most urgent first, then due soonest (none last), then oldest.
      .orderBy(
        sql`${tasks.priority} desc nulls last`,
        sql`${tasks.dueDate} asc nulls last`,
        tasks.createdAt,
        tasks.id,
      )
      .limit(1)
      .for('update', { skipLocked: true }),
  );
  const lease = sql`${leaseSeconds}::int`;
  const [task] = await tx
    .with(picked)
    .update(tasks)
    .set({
      status: 'in_progress',
      assignedTo: actor.id,
      leaseSeconds: lease,
      leaseExpiresAt: sql`now() + make_interval(secs => ${lease})`,
      version: sql`${tasks.version} + 1`,
      updatedAt: sql`now()`,
    })
    .from(picked)
    .where(eq(tasks.id, picked.id))
    .returning(taskColumns);
  if (!task) return null;
  await audit.record(ctx, {
    action: 'started',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { from: 'pending', to: 'in_progress', via: 'claimNext' },
  });
  return task;
}
