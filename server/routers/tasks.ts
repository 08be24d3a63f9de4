import { z } from 'zod';
import { AuditEntry } from '../../shared/schemas/audit.js';
import {
  Task,
  TaskActionInput,
  TaskAssignInput,
  TaskBlockInput,
  TaskCreateInput,
  TaskIdInput,
  TaskListInput,
  TaskPage,
  TaskProgressInput,
  TaskUpdateInput,
} from '../../shared/schemas/task.js';
import * as taskService from '../services/task-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { transact } from '../trpc/transact.js';
import { toAuditEntry, toTask } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'tasks';

/** A workflow action on one task: same input, same output, its own path. */
const workflowAction = (
  path: `/${string}`,
  summary: string,
  description: string,
  run: typeof taskService.start,
) =>
  protectedProcedure
    .meta(rest('POST', `/tasks/{id}/${path.slice(1)}` as `/${string}`, tag, summary, description))
    .input(TaskActionInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) => toTask(await run(tx, ctx.actor, ctx.requestId, input.id))),
    );

export const tasksRouter = router({
  create: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks',
        tag,
        'Create a task',
        'Creates a pending task, optionally in a project and under a parent task.',
      ),
    )
    .input(TaskCreateInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toTask(await taskService.create(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  list: protectedProcedure
    .meta(
      rest(
        'GET',
        '/tasks',
        tag,
        'List tasks',
        'Tasks visible to the caller, filtered and sorted, one keyset page at a time: pass `nextCursor` back as `cursor`.',
      ),
    )
    .input(TaskListInput)
    .output(TaskPage)
    .query(async ({ ctx, input }) => {
      const page = await taskService.list(ctx.db, ctx.actor, input);
      return { items: page.items.map(toTask), nextCursor: page.nextCursor };
    }),

  get: protectedProcedure
    .meta(
      rest(
        'GET',
        '/tasks/{id}',
        tag,
        'Get a task',
        'One task by id; 404 when it does not exist or is not visible to the caller.',
      ),
    )
    .input(TaskIdInput)
    .output(Task)
    .query(async ({ ctx, input }) => toTask(await taskService.get(ctx.db, ctx.actor, input.id))),

  update: protectedProcedure
    .meta(
      rest(
        'PATCH',
        '/tasks/{id}',
        tag,
        'Edit a task',
        'Edits fields (never `status`: use the workflow actions). With `expectedVersion`, fails with 409 if the task changed since.',
      ),
    )
    .input(TaskUpdateInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toTask(await taskService.update(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  delete: protectedProcedure
    .meta(
      rest(
        'DELETE',
        '/tasks/{id}',
        tag,
        'Delete a task',
        'Creator or admin; 409 while the task has subtasks.',
      ),
    )
    .input(TaskIdInput)
    .output(z.void())
    .mutation(({ ctx, input }) =>
      transact(ctx, input, (tx) => taskService.remove(tx, ctx.actor, ctx.requestId, input.id)),
    ),

  start: workflowAction(
    '/start',
    'Claim a task',
    'pending → in_progress, assigned to the caller. Of concurrent claims exactly one wins; the others get 409.',
    taskService.start,
  ),

  progress: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks/{id}/progress',
        tag,
        'Report progress',
        'Assignee or admin, while in_progress: sets `progressPercent`.',
      ),
    )
    .input(TaskProgressInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toTask(await taskService.progress(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  submitForReview: workflowAction(
    '/review',
    'Submit for review',
    'in_progress → review; assignee or admin.',
    taskService.submitForReview,
  ),

  complete: workflowAction(
    '/complete',
    'Complete a task',
    'in_progress or review → completed; assignee, project owner or admin. 409 while a subtask is open.',
    taskService.complete,
  ),

  block: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks/{id}/block',
        tag,
        'Block a task',
        'pending, in_progress or review → blocked, with a reason; assignee, creator or admin.',
      ),
    )
    .input(TaskBlockInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toTask(await taskService.block(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  unblock: workflowAction(
    '/unblock',
    'Unblock a task',
    'blocked → in_progress if assigned, else pending; assignee, creator or admin.',
    taskService.unblock,
  ),

  reopen: workflowAction(
    '/reopen',
    'Reopen a task',
    'completed → pending, progress kept; creator, project owner or admin.',
    taskService.reopen,
  ),

  assign: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks/{id}/assign',
        tag,
        'Assign a task',
        'Sets or clears the assignee (a member of the task’s project); creator, assignee, project owner or admin.',
      ),
    )
    .input(TaskAssignInput)
    .output(Task)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toTask(await taskService.assign(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  history: protectedProcedure
    .meta(rest('GET', '/tasks/{id}/history', tag, 'Task history', 'The task’s audit entries, oldest first.'))
    .input(TaskIdInput)
    .output(z.array(AuditEntry))
    .query(async ({ ctx, input }) =>
      (await taskService.history(ctx.db, ctx.actor, input.id)).map(toAuditEntry),
    ),
});
