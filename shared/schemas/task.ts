import { z } from 'zod';
import { TASK_PRIORITIES, TASK_SORTS, TASK_STATUSES } from '../enums.js';
import { TASK_ACTIONS } from '../workflow.js';
import {
  Cursor,
  IdempotencyKey,
  IdParam,
  Instant,
  jsonInt,
  Limit,
  MAX_ID,
  ProjectSlug,
  Timestamp,
  text,
  WorkerId,
} from './common.js';

export const TaskStatus = z.enum(TASK_STATUSES);
export const TaskPriority = z.enum(TASK_PRIORITIES);
export const TaskAction = z.enum(TASK_ACTIONS);

const Title = text(1, 200).meta({ description: 'Short title', example: 'Write the release notes' });
const Description = text(0, 10_000).nullable().meta({ description: 'Longer text, Markdown welcome' });
const TaskId = IdParam.meta({ description: 'The task id' });
const Priority = TaskPriority.meta({ description: 'low, medium (default), high or critical' });
const InProject = ProjectSlug.nullable().meta({ description: 'The project it belongs to; null for none' });
const DueDate = Timestamp.nullable().meta({ description: 'When it is due (ISO 8601); null for none' });
const Labels = z
  .array(text(1, 50))
  .max(20)
  .transform((labels) => [...new Set(labels)])
  .meta({ description: 'Up to 20 labels', example: ['docs', 'release'] });
const RequiredCapabilities = z
  .array(text(1, 50))
  .max(10)
  .transform((items) => [...new Set(items)])
  .meta({
    description: 'What a worker needs to be handed it by claimNext',
    example: ['python'],
  });
const LeaseSeconds = jsonInt(10, 86_400).meta({
  description: 'Lease length, seconds',
});
const ParentId = jsonInt(1, MAX_ID).nullable().meta({ description: 'The parent task id; null for none' });

export const Task = z
  .object({
    id: z.int(),
    title: z.string(),
    description: z.string().nullable(),
    status: TaskStatus,
    priority: TaskPriority,
    progressPercent: z.int(),
    assignedTo: z.string().nullable(),
    projectSlug: z.string().nullable(),
    parentId: z.int().nullable(),
    labels: z.array(z.string()),
    dueDate: Instant.nullable(),
    blockedReason: z.string().nullable(),
    createdBy: z.string(),
    createdAt: Instant,
    updatedAt: Instant,
    completedAt: Instant.nullable(),
    version: z.int(),
    requiredCapabilities: z.array(z.string()),
    leaseExpiresAt: Instant.nullable(),
  })
  .meta({ id: 'Task' });
export type Task = z.infer<typeof Task>;

export const TaskCreateInput = z.strictObject({
  title: Title,
  description: Description.optional(),
  priority: Priority.optional(),
  projectSlug: InProject.optional(),
  parentId: ParentId.optional(),
  labels: Labels.optional(),
  dueDate: DueDate.optional(),
  requiredCapabilities: RequiredCapabilities.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskCreateInput = z.infer<typeof TaskCreateInput>;

export const TaskUpdateInput = z.strictObject({
  id: TaskId,
  expectedVersion: jsonInt(1, MAX_ID)
    .optional()
    .meta({ description: 'Refuse the edit (409) unless the task is at this version' }),
  title: Title.optional(),
  description: Description.optional(),
  priority: Priority.optional(),
  parentId: ParentId.optional(),
  labels: Labels.optional(),
  dueDate: DueDate.optional(),
  requiredCapabilities: RequiredCapabilities.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskUpdateInput = z.infer<typeof TaskUpdateInput>;

export const TaskIdInput = z.strictObject({ id: TaskId });
export type TaskIdInput = z.infer<typeof TaskIdInput>;

/** A task's history pages oldest first, like every other list: `limit`, then `cursor` from the last page. */
export const TaskHistoryInput = z.strictObject({
  id: TaskId,
  limit: Limit.meta({ description: 'Page size, 1 to 100' }),
  cursor: Cursor.optional().meta({ description: 'The `nextCursor` of the previous page' }),
});
export type TaskHistoryInput = z.input<typeof TaskHistoryInput>;
export type TaskHistoryQuery = z.output<typeof TaskHistoryInput>;

/** A workflow action on one task (start, review, complete, unblock, reopen). */
export const TaskActionInput = z.strictObject({ id: TaskId, idempotencyKey: IdempotencyKey.optional() });
export type TaskActionInput = z.infer<typeof TaskActionInput>;

export const TaskProgressInput = z.strictObject({
  id: TaskId,
  percent: jsonInt(0, 100).meta({ description: 'Progress, 0 to 100', example: 40 }),
  note: text(1, 2000).optional().meta({ description: 'What was done, for the history' }),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskProgressInput = z.infer<typeof TaskProgressInput>;

export const TaskBlockInput = z.strictObject({
  id: TaskId,
  reason: text(1, 2000).meta({
    description: 'What or whom it waits for',
    example: 'Waiting for the API key',
  }),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskBlockInput = z.infer<typeof TaskBlockInput>;

export const TaskStartInput = z.strictObject({
  id: TaskId,
  leaseSeconds: LeaseSeconds.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskStartInput = z.infer<typeof TaskStartInput>;

export const TaskHeartbeatInput = z.strictObject({
  id: TaskId,
  leaseSeconds: LeaseSeconds.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskHeartbeatInput = z.infer<typeof TaskHeartbeatInput>;

export const TaskReleaseInput = z.strictObject({
  id: TaskId,
  reason: text(1, 2000).optional().meta({ description: 'Why it goes back to the queue, for the history' }),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskReleaseInput = z.infer<typeof TaskReleaseInput>;

export const TaskClaimNextInput = z.strictObject({
  project: ProjectSlug.optional().meta({ description: 'Only this project' }),
  labels: z.array(text(1, 50)).max(20).optional().meta({ description: 'Only with all these labels' }),
  minPriority: TaskPriority.optional().meta({ description: 'Only this priority or higher' }),
  leaseSeconds: LeaseSeconds.optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskClaimNextInput = z.infer<typeof TaskClaimNextInput>;

export const ClaimedTask = z
  .object({ task: Task.nullable() })
  .meta({ id: 'ClaimedTask', description: 'The task claimed, or null when nothing matching is free' });
export type ClaimedTask = z.infer<typeof ClaimedTask>;

export const TaskAssignInput = z.strictObject({
  id: TaskId,
  workerId: WorkerId.nullable().meta({ description: 'The worker to assign it to; null to unassign' }),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskAssignInput = z.infer<typeof TaskAssignInput>;

export const TaskSort = z.enum(TASK_SORTS);
export const SortOrder = z.enum(['asc', 'desc']);

// Query-string input: every number coerces explicitly and lists accept one or many values.
export const TaskListInput = z.strictObject({
  status: z
    .array(TaskStatus)
    .max(TASK_STATUSES.length)
    .optional()
    .meta({ description: 'Any of these statuses' }),
  priority: z
    .array(TaskPriority)
    .max(TASK_PRIORITIES.length)
    .optional()
    .meta({ description: 'Any of these priorities' }),
  assignedTo: WorkerId.optional().meta({ description: 'A worker id, `me`, or `none` for unassigned' }),
  project: ProjectSlug.optional().meta({ description: 'Only tasks of this project' }),
  parentId: IdParam.optional().meta({ description: 'Only subtasks of this task' }),
  label: text(1, 50).optional().meta({ description: 'Only tasks with this label' }),
  q: text(1, 200).optional().meta({ description: 'Case-insensitive search in title and description' }),
  updatedSince: Timestamp.optional().meta({ description: 'Only tasks changed at or after this instant' }),
  sort: TaskSort.default('createdAt').meta({ description: 'Sort field' }),
  order: SortOrder.default('desc').meta({ description: 'asc or desc' }),
  limit: Limit.meta({ description: 'Page size, 1 to 100' }),
  cursor: Cursor.optional().meta({ description: 'The `nextCursor` of the previous page' }),
});
export type TaskListInput = z.input<typeof TaskListInput>;
export type TaskListQuery = z.output<typeof TaskListInput>;

export const TaskPage = z
  .object({ items: z.array(Task), nextCursor: z.string().nullable() })
  .meta({ id: 'TaskPage' });
export type TaskPage = z.infer<typeof TaskPage>;
