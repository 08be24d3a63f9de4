import { z } from 'zod';
import { AuditPage } from '../../shared/schemas/audit.js';
import {
  ClaimedTask,
  Task,
  TaskActionInput,
  TaskAssignInput,
  TaskBlockInput,
  TaskClaimNextInput,
  TaskCreateInput,
  TaskHeartbeatInput,
  TaskHistoryInput,
  TaskIdInput,
  TaskListInput,
  TaskPage,
  TaskProgressInput,
  TaskReleaseInput,
  TaskStartInput,
  TaskUpdateInput,
} from '../../shared/schemas/task.js';
import * as taskService from '../services/tasks/index.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { inTransaction, read } from '../trpc/transact.js';
import { noContent, pageOf, toAuditEntry, toTask } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'tasks';

/** A workflow action on one task: `POST /tasks/{id}/<path>`, answered with the task as it now stands. */
const workflowAction = (path: string, summary: string, description: string) =>
  protectedProcedure.meta(rest('POST', `/tasks/{id}/${path}`, tag, summary, description)).output(Task);

export const tasksRouter = router({
  create: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks',
        tag,
        'Create a task',
        'Creates a pending task, optionally in a project and under a parent task.',
        { successStatus: 201 },
      ),
    )
    .input(TaskCreateInput)
    .output(Task)
    .mutation(inTransaction(taskService.create, toTask)),

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
    .input(TaskListInput.prefault({}))
    .output(TaskPage)
    .query(read(taskService.list, pageOf(toTask))),

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
    .query(read(taskService.get, toTask)),

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
    .mutation(inTransaction(taskService.update, toTask)),

  delete: protectedProcedure
    .meta(
      rest(
        'DELETE',
        '/tasks/{id}',
        tag,
        'Delete a task',
        'Creator or admin; 409 while the task has subtasks.',
        { successStatus: 204 },
      ),
    )
    .input(TaskIdInput)
    .output(z.void())
    .mutation(inTransaction(taskService.remove, noContent)),

  start: workflowAction(
    'start',
    'Claim a task',
    'pending → in_progress, assigned to the caller. Of concurrent claims exactly one wins; the others get 409 (`ALREADY_CLAIMED`; `ALREADY_HELD` for the holder unless it repeats its idempotency key). An agent’s claim takes a lease (`leaseSeconds`, default AGENT_LEASE_SECONDS).',
  )
    .input(TaskStartInput)
    .mutation(inTransaction(taskService.start, toTask)),
  progress: workflowAction(
    'progress',
    'Report progress',
    'Assignee or admin, while in_progress: sets `progressPercent`.',
  )
    .input(TaskProgressInput)
    .mutation(inTransaction(taskService.progress, toTask)),
  submitForReview: workflowAction('review', 'Submit for review', 'in_progress → review; assignee or admin.')
    .input(TaskActionInput)
    .mutation(inTransaction(taskService.submitForReview, toTask)),
  complete: workflowAction(
    'complete',
    'Complete a task',
    'in_progress or review → completed; assignee, project owner or admin. 409 while a subtask is open.',
  )
    .input(TaskActionInput)
    .mutation(inTransaction(taskService.complete, toTask)),
  block: workflowAction(
    'block',
    'Block a task',
    'pending, in_progress or review → blocked, with a reason; assignee, creator or admin.',
  )
    .input(TaskBlockInput)
    .mutation(inTransaction(taskService.block, toTask)),
  unblock: workflowAction(
    'unblock',
    'Unblock a task',
    'blocked → in_progress if assigned, else pending; assignee, creator or admin.',
  )
    .input(TaskActionInput)
    .mutation(inTransaction(taskService.unblock, toTask)),
  reopen: workflowAction(
    'reopen',
    'Reopen a task',
    'completed → pending, progress kept; creator, project owner or admin.',
  )
    .input(TaskActionInput)
    .mutation(inTransaction(taskService.reopen, toTask)),

  claimNext: protectedProcedure
    .meta(
      rest(
        'POST',
        '/tasks/claim-next',
        tag,
        'Claim the next task',
        'Claims the first free pending task the caller can see and has the capabilities for, by priority (critical first), due date (none last), age: `{ task: null }` when there is none. Concurrent callers never get the same task.',
      ),
    )
    .input(TaskClaimNextInput)
    .output(ClaimedTask)
    .mutation(inTransaction(taskService.claimNext, (task) => ({ task: task ? toTask(task) : null }))),
  heartbeat: workflowAction(
    'heartbeat',
    'Renew a lease',
    'The holder keeps its claim: the lease runs `leaseSeconds` (default: the claim’s own length) from now. 409 `LEASE_EXPIRED` once it has passed.',
  )
    .input(TaskHeartbeatInput)
    .mutation(inTransaction(taskService.heartbeat, toTask)),
  release: workflowAction(
    'release',
    'Release a task',
    'in_progress → pending, unassigned, lease cleared, progress kept; assignee, project owner or admin.',
  )
    .input(TaskReleaseInput)
    .mutation(inTransaction(taskService.release, toTask)),

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
    .mutation(inTransaction(taskService.assign, toTask)),

  history: protectedProcedure
    .meta(
      rest(
        'GET',
        '/tasks/{id}/history',
        tag,
        'Task history',
        'The task’s audit entries, oldest first, one page at a time (like every list: `limit`, `cursor`).',
      ),
    )
    .input(TaskHistoryInput)
    .output(AuditPage)
    .query(read(taskService.history, pageOf(toAuditEntry))),
});
