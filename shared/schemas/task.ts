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

const Title = text(1, 200).meta({ example: 'Write the release notes' });
const Description = text(0, 10_000).nullable();
const Labels = z
  .array(text(1, 50))
  .max(20)
  .transform((labels) => [...new Set(labels)])
  .meta({ example: ['docs', 'release'] });
const ParentId = jsonInt(1, MAX_ID).nullable();

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
  })
  .meta({ id: 'Task' });
export type Task = z.infer<typeof Task>;

export const TaskCreateInput = z.strictObject({
  title: Title,
  description: Description.optional(),
  priority: TaskPriority.optional(),
  projectSlug: ProjectSlug.nullable().optional(),
  parentId: ParentId.optional(),
  labels: Labels.optional(),
  dueDate: Timestamp.nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskCreateInput = z.infer<typeof TaskCreateInput>;

export const TaskUpdateInput = z.strictObject({
  id: IdParam,
  expectedVersion: jsonInt(1, MAX_ID).optional(),
  title: Title.optional(),
  description: Description.optional(),
  priority: TaskPriority.optional(),
  parentId: ParentId.optional(),
  labels: Labels.optional(),
  dueDate: Timestamp.nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskUpdateInput = z.infer<typeof TaskUpdateInput>;

export const TaskIdInput = z.strictObject({ id: IdParam });
export type TaskIdInput = z.infer<typeof TaskIdInput>;

/** A workflow action on one task (start, review, complete, unblock, reopen). */
export const TaskActionInput = z.strictObject({ id: IdParam, idempotencyKey: IdempotencyKey.optional() });
export type TaskActionInput = z.infer<typeof TaskActionInput>;

export const TaskProgressInput = z.strictObject({
  id: IdParam,
  percent: jsonInt(0, 100).meta({ example: 40 }),
  note: text(1, 2000).optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskProgressInput = z.infer<typeof TaskProgressInput>;

export const TaskBlockInput = z.strictObject({
  id: IdParam,
  reason: text(1, 2000).meta({ example: 'Waiting for the API key' }),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskBlockInput = z.infer<typeof TaskBlockInput>;

export const TaskAssignInput = z.strictObject({
  id: IdParam,
  workerId: WorkerId.nullable(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type TaskAssignInput = z.infer<typeof TaskAssignInput>;

export const TaskSort = z.enum(TASK_SORTS);
export const SortOrder = z.enum(['asc', 'desc']);

// Query-string input: every number coerces explicitly and lists accept one or many values.
export const TaskListInput = z.strictObject({
  status: z.array(TaskStatus).max(TASK_STATUSES.length).optional(),
  priority: z.array(TaskPriority).max(TASK_PRIORITIES.length).optional(),
  assignedTo: WorkerId.optional().meta({ description: 'A worker id, `me`, or `none` for unassigned' }),
  project: ProjectSlug.optional(),
  parentId: IdParam.optional(),
  label: text(1, 50).optional(),
  q: text(1, 200).optional().meta({ description: 'Case-insensitive search in title and description' }),
  updatedSince: Timestamp.optional(),
  sort: TaskSort.default('createdAt'),
  order: SortOrder.default('desc'),
  limit: Limit,
  cursor: Cursor.optional().meta({ description: 'The `nextCursor` of the previous page' }),
});
export type TaskListInput = z.input<typeof TaskListInput>;
export type TaskListQuery = z.output<typeof TaskListInput>;

export const TaskPage = z
  .object({ items: z.array(Task), nextCursor: z.string().nullable() })
  .meta({ id: 'TaskPage' });
export type TaskPage = z.infer<typeof TaskPage>;
