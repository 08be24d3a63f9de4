import { and, eq, not, sql } from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { projects, tasks } from '../../../db/schema/index.js';
import type { TaskCreateInput, TaskUpdateInput } from '../../../shared/schemas/task.js';
import { conflict, invalid, notFound } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { perRole, reusableStatement } from '../reusable-statement.js';
import { projectVisibleToId, taskVisibleTo } from '../visibility.js';
import { assertPermitted, permitted, standing } from './permissions.js';
import { get } from './reads.js';
import { type TaskRow, taskColumns } from './rows.js';
import { assertNoCycle, assertParent, hasSubtasks, lockForSubtaskCheck } from './subtasks.js';

const projectSlugOnly = { slug: projects.slug };
const selectVisibleProject = perRole((admin) =>
  reusableStatement<{ slug: string }, { slug: string; actorId: string }>(
    (db) =>
      db
        .select(projectSlugOnly)
        .from(projects)
        .where(
          and(
            eq(projects.slug, sql.placeholder('slug')),
            admin ? undefined : projectVisibleToId(sql.placeholder('actorId')),
          ),
        ),
    projectSlugOnly,
  ),
);

async function assertProjectVisible(ctx: ServiceContext, slug: string): Promise<void> {
  const [row] = await selectVisibleProject(ctx.actor)(ctx.tx, { slug, actorId: ctx.actor.id });
  if (!row) throw notFound(`Project ${slug} not found`);
}

interface InsertValues {
  title: string;
  description: string | null;
  priority: TaskRow['priority'];
  projectSlug: string | null;
  parentId: number | null;
  labels: string[];
  dueDate: string | null;
  requiredCapabilities: string[];
  createdBy: string;
}

const insertTask = reusableStatement<TaskRow, InsertValues>(
  (db) =>
    db
      .insert(tasks)
      .values({
        title: sql.placeholder('title'),
        description: sql.placeholder('description'),
        priority: sql.placeholder('priority'),
        projectSlug: sql.placeholder('projectSlug'),
        parentId: sql.placeholder('parentId'),
        labels: sql.placeholder('labels'),
        dueDate: sql`${sql.placeholder('dueDate')}::timestamptz`,
        requiredCapabilities: sql.placeholder('requiredCapabilities'),
        createdBy: sql.placeholder('createdBy'),
      })
      .returning(),
  taskColumns,
);

export async function create(ctx: ServiceContext, input: TaskCreateInput): Promise<TaskRow> {
  const projectSlug = input.projectSlug ?? null;
  if (projectSlug) await assertProjectVisible(ctx, projectSlug);
  if (input.parentId != null) await assertParent(ctx, input.parentId, projectSlug, ctx.actor.id);
  const [row] = await insertTask(ctx.tx, {
    title: input.title,
    description: input.description ?? null,
    priority: input.priority ?? 'medium',
    projectSlug,
    parentId: input.parentId ?? null,
    labels: input.labels ?? [],
    // In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
    dueDate: input.dueDate ? new Date(input.dueDate).toISOString() : null,
    requiredCapabilities: input.requiredCapabilities ?? [],
    createdBy: ctx.actor.id,
  });
  if (!row) throw new Error('insert returned no row');
  await audit.record(ctx, {
    action: 'created',
    taskId: row.id,
    projectSlug,
    context: { title: row.title, priority: row.priority, parentId: row.parentId, labels: row.labels },
  });
  return row;
}

/** Edits fields (never the status), as one conditional UPDATE that also returns the values it replaced. */
export async function update(ctx: ServiceContext, input: TaskUpdateInput): Promise<TaskRow> {
  const { tx, actor } = ctx;
  const values: PgUpdateSetSource<typeof tasks> = {};
  if (input.title !== undefined) values.title = input.title;
  if (input.description !== undefined) values.description = input.description;
  if (input.priority !== undefined) values.priority = input.priority;
  if (input.parentId !== undefined) values.parentId = input.parentId;
  if (input.labels !== undefined) values.labels = input.labels;
  if (input.dueDate !== undefined) values.dueDate = input.dueDate === null ? null : new Date(input.dueDate);
  if (input.requiredCapabilities !== undefined) values.requiredCapabilities = input.requiredCapabilities;
  const fields = Object.keys(values) as (keyof typeof values & keyof TaskRow)[];
  if (fields.length === 0) throw invalid('nothing to update: give at least one field');
  const current = await get(ctx, input);
  if (input.parentId != null) {
    await assertParent(ctx, input.parentId, current.projectSlug, current.createdBy);
    await assertNoCycle(tx, input.id, input.parentId);
  }
  const prev = tx.select().from(tasks).where(eq(tasks.id, input.id)).as('prev');
  const [row] = await tx
    .update(tasks)
    .set({ ...values, version: sql`${tasks.version} + 1`, updatedAt: sql`now()` })
    .from(prev)
    .where(
      and(
        eq(tasks.id, prev.id),
        eq(tasks.version, prev.version),
        taskVisibleTo(actor),
        permitted('edit', actor.role === 'admin', actor.id),
        input.expectedVersion === undefined ? undefined : eq(tasks.version, input.expectedVersion),
      ),
    )
    .returning({
      ...taskColumns,
      prev_title: prev.title,
      prev_description: prev.description,
      prev_priority: prev.priority,
      prev_parentId: prev.parentId,
      prev_labels: prev.labels,
      prev_dueDate: prev.dueDate,
      prev_requiredCapabilities: prev.requiredCapabilities,
    });
  if (!row) {
    const now = await standing(ctx, input.id);
    if (input.expectedVersion !== undefined && now.task.version !== input.expectedVersion) {
      throw conflict(
        `Task ${input.id} is at version ${now.task.version}, not ${input.expectedVersion}`,
        'VERSION_MISMATCH',
      );
    }
    assertPermitted('edit', now, 'edit');
    throw conflict(`Task ${input.id} changed concurrently; retry`, 'CONCURRENT_CHANGE');
  }
  const {
    prev_title,
    prev_description,
    prev_priority,
    prev_parentId,
    prev_labels,
    prev_dueDate,
    prev_requiredCapabilities,
    ...task
  } = row;
  const before: Partial<TaskRow> = {
    title: prev_title,
    description: prev_description,
    priority: prev_priority,
    parentId: prev_parentId,
    labels: prev_labels,
    dueDate: prev_dueDate,
    requiredCapabilities: prev_requiredCapabilities,
  };
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const field of fields) {
    const was = jsonValue(before[field]);
    const is = jsonValue(task[field]);
    if (JSON.stringify(was) !== JSON.stringify(is)) changes[field] = { before: was, after: is };
  }
  await audit.record(ctx, {
    action: 'updated',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { changes },
  });
  return task;
}

function jsonValue(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}

/** Deletes a task without subtasks. */
export async function remove(ctx: ServiceContext, input: { id: number }): Promise<void> {
  const { tx, actor } = ctx;
  await lockForSubtaskCheck(ctx, input.id, 'update');
  const [row] = await tx
    .delete(tasks)
    .where(
      and(
        eq(tasks.id, input.id),
        taskVisibleTo(actor),
        permitted('delete', actor.role === 'admin', actor.id),
        not(hasSubtasks),
      ),
    )
    .returning();
  if (!row) {
    assertPermitted('delete', await standing(ctx, input.id), 'delete');
    throw conflict(`Task ${input.id} has subtasks; delete or move them first`, 'HAS_SUBTASKS');
  }
  await audit.record(ctx, {
    action: 'deleted',
    taskId: row.id,
    projectSlug: row.projectSlug,
    context: { title: row.title, status: row.status },
  });
}
