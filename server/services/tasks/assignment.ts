import { and, eq, inArray, ne, sql } from 'drizzle-orm';
import { projectMembers, tasks, workers } from '../../../db/schema/index.js';
import type { TaskAssignInput } from '../../../shared/schemas/task.js';
import { conflict, invalid, notFound } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { taskVisibleTo } from '../visibility.js';
import { release } from './actions.js';
import { assertPermitted, permitted, standing } from './permissions.js';
import { get } from './reads.js';
import { type TaskRow, taskColumns } from './rows.js';

/**
 * Sets or clears the assignee, who must be someone allowed to see the task (see assertAssignable).
 * Clearing it on a task in progress hands the task back to the queue: that is a release, with a
 * release's rules.
 */
export async function assign(ctx: ServiceContext, input: TaskAssignInput): Promise<TaskRow> {
  const { tx, actor } = ctx;
  const current = await get(ctx, input);
  if (input.workerId === null && current.status === 'in_progress') return release(ctx, { id: input.id });
  if (input.workerId !== null) await assertAssignable(ctx, input.workerId, current);
  const prev = tx
    .select({ id: tasks.id, version: tasks.version, assignedTo: tasks.assignedTo, status: tasks.status })
    .from(tasks)
    .where(eq(tasks.id, input.id))
    .as('prev');
  // Only a task nobody is working on may be left without an assignee.
  const allowed =
    input.workerId === null ? inArray(tasks.status, ['pending', 'blocked']) : ne(tasks.status, 'completed');
  const [row] = await tx
    .update(tasks)
    // A lease belongs to a claim; whoever is given the task has not claimed it.
    .set({
      assignedTo: input.workerId,
      leaseExpiresAt: null,
      leaseSeconds: null,
      version: sql`${tasks.version} + 1`,
      updatedAt: sql`now()`,
    })
    .from(prev)
    .where(
      and(
        eq(tasks.id, prev.id),
        eq(tasks.version, prev.version),
        taskVisibleTo(actor),
        permitted('assign', actor.role === 'admin', actor.id),
        allowed,
      ),
    )
    .returning({ ...taskColumns, prev_assignedTo: prev.assignedTo });
  if (!row) {
    const now = await standing(ctx, input.id);
    assertPermitted('assign', now, 'assign');
    if (now.task.status === 'completed')
      throw conflict(`Task ${input.id} is completed; reopen it first`, 'ILLEGAL_TRANSITION');
    if (input.workerId === null && now.task.status !== 'pending' && now.task.status !== 'blocked') {
      throw conflict(
        `Task ${input.id} is ${now.task.status}; block or complete it before unassigning`,
        'ILLEGAL_TRANSITION',
      );
    }
    throw conflict(`Task ${input.id} changed concurrently; retry`, 'CONCURRENT_CHANGE');
  }
  const { prev_assignedTo, ...task } = row;
  await audit.record(ctx, {
    action: 'assigned',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { before: prev_assignedTo, after: task.assignedTo },
  });
  return task;
}

/**
 * Assignment puts a task in someone's queue (and an agent's prompt), so it reaches only workers who
 * may already see the task: a member of its project; for a task without a project, its creator, or
 * whoever an admin chooses. Anyone else would be a channel for text from strangers.
 */
async function assertAssignable(
  ctx: ServiceContext,
  workerId: string,
  task: Pick<TaskRow, 'projectSlug' | 'createdBy'>,
): Promise<void> {
  const { projectSlug } = task;
  const [worker] = await ctx.tx.select({ id: workers.id }).from(workers).where(eq(workers.id, workerId));
  if (!worker) throw notFound(`Worker ${workerId} not found`);
  if (!projectSlug) {
    if (workerId === task.createdBy || ctx.actor.role === 'admin') return;
    throw invalid(
      'a task without a project can be assigned only to its creator (or by an admin); put it in a project to share it',
    );
  }
  const [member] = await ctx.tx
    .select({ workerId: projectMembers.workerId })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, projectSlug), eq(projectMembers.workerId, workerId)));
  if (!member) throw invalid(`Worker ${workerId} is not a member of project ${projectSlug}`);
}
