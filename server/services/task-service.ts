import {
  and,
  asc,
  desc,
  eq,
  getTableColumns,
  ilike,
  inArray,
  isNull,
  ne,
  or,
  type Placeholder,
  type SQL,
  sql,
} from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { LRUCache } from 'lru-cache';
import type { Db } from '../../db/client.js';
import { projectMembers, projects, tasks, workers } from '../../db/schema/index.js';
import type { TaskSort } from '../../shared/enums.js';
import type {
  TaskAssignInput,
  TaskBlockInput,
  TaskCreateInput,
  TaskListQuery,
  TaskProgressInput,
  TaskUpdateInput,
} from '../../shared/schemas/task.js';
import {
  actionsFrom,
  legalActions,
  mayPerform,
  type Relation,
  TASK_ACTIONS,
  type TaskAction,
  WORKFLOW,
  type WorkflowActor,
} from '../../shared/workflow.js';
import type { Actor } from '../auth/actor.js';
import { conflict, forbidden, invalid, notFound } from '../errors.js';
import * as audit from './audit-service.js';
import { decodeCursor, encodeCursor } from './cursor.js';
import { perRole, reusableStatement } from './reusable-statement.js';
import {
  outerTask,
  ownsTaskProject,
  ownsTaskProjectId,
  projectVisibleToId,
  taskVisibleTo,
  taskVisibleToId,
} from './visibility.js';

export type TaskRow = typeof tasks.$inferSelect;

const taskColumns = getTableColumns(tasks);

// --- reads -------------------------------------------------------------------------------------

function buildGet(admin: boolean) {
  return reusableStatement<TaskRow>(
    (db) =>
      db
        .select()
        .from(tasks)
        .where(
          and(
            eq(tasks.id, sql.placeholder('id')),
            admin ? undefined : taskVisibleToId(sql.placeholder('actorId')),
          ),
        ),
    taskColumns,
  );
}
const getStatement = perRole(buildGet);

export async function get(db: Db, actor: Actor, id: number): Promise<TaskRow> {
  const [row] = await getStatement(actor)(db, { id, actorId: actor.id });
  if (!row) throw notFound(`Task ${id} not found`);
  return row;
}

const SORT_COLUMNS = {
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
  priority: tasks.priority,
  dueDate: tasks.dueDate,
} as const satisfies Record<TaskSort, unknown>;

type SortValue = string | null;

function sortValueOf(row: TaskRow, sort: TaskSort): SortValue {
  const value = row[sort];
  return value instanceof Date ? value.toISOString() : value;
}

function sortParam(sort: TaskSort, value: Placeholder): SQL {
  return sort === 'priority' ? sql`${value}::task_priority` : sql`${value}::timestamptz`;
}

/**
 * Rows after the cursor in `(sort column, id)` order, `afterValue` and `afterId` left to the
 * statement's values. dueDate is the one nullable sort column: nulls count as the greatest value
 * (last ascending, first descending), matching a plain index.
 */
function keysetAfter(sort: TaskSort, ascending: boolean, valueIsNull: boolean): SQL {
  const column = SORT_COLUMNS[sort];
  const id = sql.placeholder('afterId');
  const cmp = ascending ? sql`>` : sql`<`;
  if (valueIsNull) {
    return ascending
      ? sql`(${column} is null and ${tasks.id} > ${id})`
      : sql`(${column} is not null or ${tasks.id} < ${id})`;
  }
  const after = sql`(${column}, ${tasks.id}) ${cmp} (${sortParam(sort, sql.placeholder('afterValue'))}, ${id})`;
  return sort === 'dueDate' && ascending ? sql`(${after} or ${column} is null)` : after;
}

function escapeLike(text: string): string {
  return text.replace(/[\\%_]/g, (c) => `\\${c}`);
}

/** What a list query is made of, apart from its values: one prepared statement per shape. */
interface ListShape {
  admin: boolean;
  statuses: number;
  priorities: number;
  assignee: 'any' | 'none' | 'worker';
  project: boolean;
  parent: boolean;
  label: boolean;
  search: boolean;
  updatedSince: boolean;
  sort: TaskSort;
  ascending: boolean;
  after: 'none' | 'null' | 'value';
}

function buildList(shape: ListShape) {
  const p = sql.placeholder;
  const each = (name: string, count: number) => Array.from({ length: count }, (_, i) => p(`${name}${i}`));
  const column = SORT_COLUMNS[shape.sort];
  const { ascending } = shape;
  return reusableStatement<TaskRow>(
    (db) =>
      db
        .select()
        .from(tasks)
        .where(
          and(
            shape.admin ? undefined : taskVisibleToId(p('actorId')),
            shape.statuses ? inArray(tasks.status, each('status', shape.statuses)) : undefined,
            shape.priorities ? inArray(tasks.priority, each('priority', shape.priorities)) : undefined,
            shape.assignee === 'none'
              ? isNull(tasks.assignedTo)
              : shape.assignee === 'worker'
                ? eq(tasks.assignedTo, p('assignee'))
                : undefined,
            shape.project ? eq(tasks.projectSlug, p('project')) : undefined,
            shape.parent ? eq(tasks.parentId, p('parentId')) : undefined,
            shape.label ? sql`${tasks.labels} @> array[${p('label')}]::text[]` : undefined,
            shape.search
              ? or(ilike(tasks.title, p('search')), ilike(tasks.description, p('search')))
              : undefined,
            shape.updatedSince ? sql`${tasks.updatedAt} >= ${p('updatedSince')}::timestamptz` : undefined,
            shape.after === 'none' ? undefined : keysetAfter(shape.sort, ascending, shape.after === 'null'),
          ),
        )
        .orderBy(
          ascending ? asc(column) : desc(column),
          ...(shape.sort === 'dueDate' ? [sql`${column} is null ${ascending ? sql`asc` : sql`desc`}`] : []),
          ascending ? asc(tasks.id) : desc(tasks.id),
        )
        .limit(p('limit')),
    taskColumns,
  );
}

// Building a list query is a large share of a list request; each shape is built once (shapes are
// few: the filters a client combines, sorts and orders) and run with its values.
const listStatements = new LRUCache<string, ReturnType<typeof buildList>, ListShape>({
  max: 500,
  memoMethod: (_key, _stale, { context }) => buildList(context),
});

function listStatement(shape: ListShape) {
  return listStatements.memo(JSON.stringify(shape), { context: shape });
}

export async function list(
  db: Db,
  actor: Actor,
  query: TaskListQuery,
): Promise<{ items: TaskRow[]; nextCursor: string | null }> {
  const values: Record<string, unknown> = { actorId: actor.id, limit: query.limit + 1 };
  let after: ListShape['after'] = 'none';
  if (query.cursor) {
    const c = decodeCursor(query.cursor, 'tasks');
    if (c.s !== query.sort || c.o !== query.order) throw invalid('cursor does not belong to this sort order');
    after = c.v === null ? 'null' : 'value';
    values.afterValue = c.v;
    values.afterId = c.id;
  }
  query.status?.forEach((status, i) => {
    values[`status${i}`] = status;
  });
  query.priority?.forEach((priority, i) => {
    values[`priority${i}`] = priority;
  });
  if (query.assignedTo !== undefined && query.assignedTo !== 'none') {
    values.assignee = query.assignedTo === 'me' ? actor.id : query.assignedTo;
  }
  values.project = query.project;
  values.parentId = query.parentId;
  values.label = query.label;
  if (query.q) values.search = `%${escapeLike(query.q)}%`;
  // In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
  if (query.updatedSince !== undefined) values.updatedSince = new Date(query.updatedSince).toISOString();

  const statement = listStatement({
    admin: actor.role === 'admin',
    statuses: query.status?.length ?? 0,
    priorities: query.priority?.length ?? 0,
    assignee: query.assignedTo === undefined ? 'any' : query.assignedTo === 'none' ? 'none' : 'worker',
    project: query.project !== undefined,
    parent: query.parentId !== undefined,
    label: query.label !== undefined,
    search: Boolean(query.q),
    updatedSince: query.updatedSince !== undefined,
    sort: query.sort,
    ascending: query.order === 'asc',
    after,
  });
  const rows = await statement(db, values);
  const items = rows.slice(0, query.limit);
  const last = items.at(-1);
  const nextCursor =
    rows.length > query.limit && last
      ? encodeCursor('tasks', {
          s: query.sort,
          o: query.order,
          v: sortValueOf(last, query.sort),
          id: last.id,
        })
      : null;
  return { items, nextCursor };
}

export async function history(db: Db, actor: Actor, id: number): Promise<audit.AuditRow[]> {
  await get(db, actor, id);
  return audit.historyOf(db, id);
}

// --- create, update, delete --------------------------------------------------------------------

const projectSlugOnly = { slug: projects.slug };
const selectVisibleProject = perRole((admin) =>
  reusableStatement<{ slug: string }>(
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

async function assertProjectVisible(db: Db, actor: Actor, slug: string): Promise<void> {
  const [row] = await selectVisibleProject(actor)(db, { slug, actorId: actor.id });
  if (!row) throw notFound(`Project ${slug} not found`);
}

/** The parent must be visible, in the same project and open; it is locked so it cannot complete meanwhile. */
async function assertParent(
  db: Db,
  actor: Actor,
  parentId: number,
  projectSlug: string | null,
): Promise<void> {
  const [parent] = await db
    .select({ projectSlug: tasks.projectSlug, status: tasks.status })
    .from(tasks)
    .where(and(eq(tasks.id, parentId), taskVisibleTo(actor)))
    .for('share');
  if (!parent) throw notFound(`Parent task ${parentId} not found`);
  if (parent.projectSlug !== projectSlug) throw invalid('parentId must be a task of the same project');
  if (parent.status === 'completed') throw conflict(`Parent task ${parentId} is completed; reopen it first`);
}

const insertTask = reusableStatement<TaskRow>(
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
        createdBy: sql.placeholder('createdBy'),
      })
      .returning(),
  taskColumns,
);

export async function create(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: TaskCreateInput,
): Promise<TaskRow> {
  const projectSlug = input.projectSlug ?? null;
  if (projectSlug) await assertProjectVisible(tx, actor, projectSlug);
  if (input.parentId != null) await assertParent(tx, actor, input.parentId, projectSlug);
  const [row] = await insertTask(tx, {
    title: input.title,
    description: input.description ?? null,
    priority: input.priority ?? 'medium',
    projectSlug,
    parentId: input.parentId ?? null,
    labels: input.labels ?? [],
    // In UTC: PostgreSQL refuses offsets beyond ±15:59, which ISO 8601 allows.
    dueDate: input.dueDate ? new Date(input.dueDate).toISOString() : null,
    createdBy: actor.id,
  });
  if (!row) throw new Error('insert returned no row');
  await audit.record(tx, actor, requestId, {
    action: 'created',
    taskId: row.id,
    projectSlug,
    context: { title: row.title, priority: row.priority, parentId: row.parentId, labels: row.labels },
  });
  return row;
}

/** Whether the actor may edit or assign the task: creator, assignee, project owner or admin. */
function mayEdit(actor: Actor): SQL | undefined {
  if (actor.role === 'admin') return undefined;
  return or(eq(tasks.createdBy, actor.id), eq(tasks.assignedTo, actor.id), ownsTaskProject(actor));
}

async function assertNoCycle(tx: Db, id: number, parentId: number): Promise<void> {
  if (parentId === id) throw invalid('a task cannot be its own parent');
  // Tree changes are serialised, so two concurrent re-parentings cannot close a loop together.
  await tx.execute(sql`select pg_advisory_xact_lock(hashtext('taskflow.task-tree'))`);
  const result = await tx.execute(sql`
    with recursive ancestors(id, parent_id) as (
      select id, parent_id from tasks where id = ${parentId}
      union
      select t.id, t.parent_id from tasks t join ancestors a on t.id = a.parent_id
    )
    select 1 as hit from ancestors where id = ${id} limit 1`);
  if (rowsOf(result).length > 0) throw invalid('parentId would make a cycle');
}

/** Rows of `execute`, whichever driver ran it (postgres.js returns an array, PGlite `{ rows }`). */
function rowsOf(result: unknown): unknown[] {
  if (Array.isArray(result)) return result;
  if (result && typeof result === 'object' && 'rows' in result && Array.isArray(result.rows))
    return result.rows;
  return [];
}

export async function update(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: TaskUpdateInput,
): Promise<TaskRow> {
  const values: PgUpdateSetSource<typeof tasks> = {};
  if (input.title !== undefined) values.title = input.title;
  if (input.description !== undefined) values.description = input.description;
  if (input.priority !== undefined) values.priority = input.priority;
  if (input.parentId !== undefined) values.parentId = input.parentId;
  if (input.labels !== undefined) values.labels = input.labels;
  if (input.dueDate !== undefined) values.dueDate = input.dueDate === null ? null : new Date(input.dueDate);
  const fields = Object.keys(values) as (keyof typeof values & keyof TaskRow)[];
  if (fields.length === 0) throw invalid('nothing to update: give at least one field');
  const current = await get(tx, actor, input.id);
  if (input.parentId != null) {
    await assertParent(tx, actor, input.parentId, current.projectSlug);
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
        mayEdit(actor),
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
    });
  if (!row) {
    const now = await get(tx, actor, input.id);
    if (input.expectedVersion !== undefined && now.version !== input.expectedVersion) {
      throw conflict(`Task ${input.id} is at version ${now.version}, not ${input.expectedVersion}`);
    }
    if (!(await mayEditTask(tx, actor, now))) {
      throw forbidden('Only the creator, the assignee, a project owner or an admin may edit this task');
    }
    throw conflict(`Task ${input.id} changed concurrently; retry`);
  }
  const { prev_title, prev_description, prev_priority, prev_parentId, prev_labels, prev_dueDate, ...task } =
    row;
  const before: Partial<TaskRow> = {
    title: prev_title,
    description: prev_description,
    priority: prev_priority,
    parentId: prev_parentId,
    labels: prev_labels,
    dueDate: prev_dueDate,
  };
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  for (const field of fields) {
    const was = jsonValue(before[field]);
    const is = jsonValue(task[field]);
    if (JSON.stringify(was) !== JSON.stringify(is)) changes[field] = { before: was, after: is };
  }
  await audit.record(tx, actor, requestId, {
    action: 'updated',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { changes },
  });
  return task;
}

async function mayEditTask(db: Db, actor: Actor, task: TaskRow): Promise<boolean> {
  if (actor.role === 'admin' || task.createdBy === actor.id || task.assignedTo === actor.id) return true;
  return isProjectOwner(db, actor, task.projectSlug);
}

async function isProjectOwner(db: Db, actor: Actor, projectSlug: string | null): Promise<boolean> {
  if (!projectSlug) return false;
  const [row] = await db
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, projectSlug), eq(projectMembers.workerId, actor.id)));
  return row?.role === 'owner';
}

/**
 * Locks a task row before a statement whose condition reads *other* rows (its subtasks). A subtask
 * being created holds its parent FOR SHARE until it commits; taking the lock in a statement of its
 * own makes the next statement's snapshot include that subtask. Without it, the UPDATE or DELETE
 * would wait for the same lock with a snapshot taken before the subtask existed, and go ahead.
 */
type LockStrength = 'update' | 'no key update';

function buildLock(strength: LockStrength, admin: boolean) {
  return reusableStatement<unknown>((db) =>
    db
      .select({ id: tasks.id })
      .from(tasks)
      .where(
        and(
          eq(tasks.id, sql.placeholder('id')),
          admin ? undefined : taskVisibleToId(sql.placeholder('actorId')),
        ),
      )
      .for(strength),
  );
}
const lockStatements = {
  update: perRole((admin) => buildLock('update', admin)),
  'no key update': perRole((admin) => buildLock('no key update', admin)),
};

async function lockForSubtaskCheck(tx: Db, actor: Actor, id: number, strength: LockStrength) {
  await lockStatements[strength](actor)(tx, { id, actorId: actor.id });
}

export async function remove(tx: Db, actor: Actor, requestId: string, id: number): Promise<void> {
  await lockForSubtaskCheck(tx, actor, id, 'update');
  const [row] = await tx
    .delete(tasks)
    .where(
      and(
        eq(tasks.id, id),
        taskVisibleTo(actor),
        actor.role === 'admin' ? undefined : eq(tasks.createdBy, actor.id),
        sql`not exists (select 1 from tasks child where child.parent_id = ${outerTask.id})`,
      ),
    )
    .returning();
  if (!row) {
    const task = await get(tx, actor, id);
    if (actor.role !== 'admin' && task.createdBy !== actor.id) {
      throw forbidden('Only the creator or an admin may delete this task');
    }
    throw conflict(`Task ${id} has subtasks; delete or move them first`);
  }
  await audit.record(tx, actor, requestId, {
    action: 'deleted',
    taskId: row.id,
    projectSlug: row.projectSlug,
    context: { title: row.title, status: row.status },
  });
}

export async function assign(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: TaskAssignInput,
): Promise<TaskRow> {
  const current = await get(tx, actor, input.id);
  if (input.workerId !== null) await assertAssignable(tx, input.workerId, current.projectSlug);
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
    .set({ assignedTo: input.workerId, version: sql`${tasks.version} + 1`, updatedAt: sql`now()` })
    .from(prev)
    .where(
      and(
        eq(tasks.id, prev.id),
        eq(tasks.version, prev.version),
        taskVisibleTo(actor),
        mayEdit(actor),
        allowed,
      ),
    )
    .returning({ ...taskColumns, prev_assignedTo: prev.assignedTo });
  if (!row) {
    const now = await get(tx, actor, input.id);
    if (!(await mayEditTask(tx, actor, now))) {
      throw forbidden('Only the creator, the assignee, a project owner or an admin may assign this task');
    }
    if (now.status === 'completed') throw conflict(`Task ${input.id} is completed; reopen it first`);
    if (input.workerId === null && now.status !== 'pending' && now.status !== 'blocked') {
      throw conflict(`Task ${input.id} is ${now.status}; block or complete it before unassigning`);
    }
    throw conflict(`Task ${input.id} changed concurrently; retry`);
  }
  const { prev_assignedTo, ...task } = row;
  await audit.record(tx, actor, requestId, {
    action: 'assigned',
    taskId: task.id,
    projectSlug: task.projectSlug,
    context: { before: prev_assignedTo, after: task.assignedTo },
  });
  return task;
}

async function assertAssignable(db: Db, workerId: string, projectSlug: string | null): Promise<void> {
  const [worker] = await db.select({ id: workers.id }).from(workers).where(eq(workers.id, workerId));
  if (!worker) throw notFound(`Worker ${workerId} not found`);
  if (!projectSlug) return;
  const [member] = await db
    .select({ workerId: projectMembers.workerId })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, projectSlug), eq(projectMembers.workerId, workerId)));
  if (!member) throw invalid(`Worker ${workerId} is not a member of project ${projectSlug}`);
}

// --- workflow (SPEC §4) ------------------------------------------------------------------------

const VERB: Record<TaskAction, string> = {
  start: 'start',
  progress: 'record progress on',
  submitForReview: 'submit for review',
  complete: 'complete',
  block: 'block',
  unblock: 'unblock',
  reopen: 'reopen',
};

const AUDIT_ACTION = {
  start: 'started',
  progress: 'progressed',
  submitForReview: 'submitted',
  complete: 'completed',
  block: 'blocked',
  unblock: 'unblocked',
  reopen: 'reopened',
} as const satisfies Record<TaskAction, audit.AuditRecord['action']>;

const openSubtasks = sql<number>`(select count(*)::int from tasks child where child.parent_id = ${outerTask.id} and child.status <> 'completed')`;

/** The rule's "who" as SQL on the row being changed; undefined when the actor passes whatever the row. */
/** Who may perform the action, for the actor in the `actorId` placeholder (admins per the workflow). */
function mayAct(admin: boolean, action: TaskAction): SQL | undefined {
  const actorId = sql.placeholder('actorId');
  const clauses: Record<Relation, SQL | undefined> = {
    anyone: or(isNull(tasks.assignedTo), eq(tasks.assignedTo, actorId)),
    assignee: eq(tasks.assignedTo, actorId),
    creator: eq(tasks.createdBy, actorId),
    projectOwner: ownsTaskProjectId(actorId),
    admin: undefined,
  };
  const who = WORKFLOW[action].who;
  if (who.includes('admin') && admin) return undefined;
  return or(...who.filter((relation) => relation !== 'admin').map((relation) => clauses[relation]));
}

interface Effect {
  set: PgUpdateSetSource<typeof tasks>;
  where?: SQL;
}

/** What the action changes; the actor, percent and reason are the placeholders of the same names. */
function effectOf(action: TaskAction): Effect {
  switch (action) {
    case 'start':
      return { set: { status: 'in_progress', assignedTo: sql`${sql.placeholder('actorId')}` } };
    case 'progress':
      return { set: { progressPercent: sql`${sql.placeholder('percent')}` } };
    case 'submitForReview':
      return { set: { status: 'review' } };
    case 'complete':
      return {
        set: { status: 'completed', progressPercent: 100, completedAt: sql`now()` },
        where: sql`${openSubtasks} = 0`,
      };
    case 'block':
      return { set: { status: 'blocked', blockedReason: sql`${sql.placeholder('reason')}` } };
    case 'unblock':
      return {
        set: {
          status: sql`(case when ${tasks.assignedTo} is null then 'pending' else 'in_progress' end)::task_status`,
          blockedReason: null,
        },
      };
    case 'reopen':
      return { set: { status: 'pending', completedAt: null } };
  }
}

// The row as it was before the UPDATE, from its FROM subquery named "prev".
const actReturning = {
  ...taskColumns,
  prev_status: sql<TaskRow['status']>`"prev"."status"`,
  prev_progress: sql<number>`"prev"."progress_percent"`,
};

/** The conditional UPDATE of one action for admins or for everyone else, built once. */
function buildAct(action: TaskAction, admin: boolean) {
  const effect = effectOf(action);
  return reusableStatement<TaskRow & { prev_status: TaskRow['status']; prev_progress: number }>((db) => {
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
    return db
      .update(tasks)
      .set({ ...effect.set, version: sql`${tasks.version} + 1`, updatedAt: sql`now()` })
      .from(prev)
      .where(
        and(
          eq(tasks.id, prev.id),
          eq(tasks.version, prev.version),
          inArray(tasks.status, [...WORKFLOW[action].from]),
          admin ? undefined : taskVisibleToId(sql.placeholder('actorId')),
          mayAct(admin, action),
          effect.where,
        ),
      )
      .returning(actReturning);
  }, actReturning);
}

const actStatements = Object.fromEntries(
  TASK_ACTIONS.map((action) => [action, perRole((admin) => buildAct(action, admin))]),
) as Record<TaskAction, (actor: Actor) => ReturnType<typeof buildAct>>;

/**
 * Applies a workflow action in one conditional UPDATE: status, permission, visibility and the row
 * version are checked by the database, so of concurrent callers exactly one can win. When nothing
 * was updated, the row is read again only to say why.
 */
async function act(
  tx: Db,
  actor: Actor,
  requestId: string,
  id: number,
  action: TaskAction,
  payload: { percent?: number; reason?: string; note?: string } = {},
): Promise<TaskRow> {
  if (action === 'complete') await lockForSubtaskCheck(tx, actor, id, 'no key update');
  const [row] = await actStatements[action](actor)(tx, {
    id,
    actorId: actor.id,
    percent: payload.percent,
    reason: payload.reason,
  });
  if (!row) return explainRefusal(tx, actor, id, action);
  const { prev_status, prev_progress, ...task } = row;
  const context: Record<string, unknown> = { from: prev_status, to: task.status };
  if (action === 'progress') {
    Object.assign(context, { before: prev_progress, percent: task.progressPercent });
    if (payload.note) context.note = payload.note;
  }
  if (action === 'block') context.reason = payload.reason;
  await audit.record(tx, actor, requestId, {
    action: AUDIT_ACTION[action],
    taskId: task.id,
    projectSlug: task.projectSlug,
    context,
  });
  return task;
}

async function explainRefusal(tx: Db, actor: Actor, id: number, action: TaskAction): Promise<TaskRow> {
  const [found] = await tx
    .select({ ...taskColumns, ownsProject: ownsTaskProject(actor).mapWith(Boolean), openSubtasks })
    .from(tasks)
    .where(and(eq(tasks.id, id), taskVisibleTo(actor)));
  if (!found) throw notFound(`Task ${id} not found`);
  const { ownsProject, openSubtasks: open, ...task } = found;
  // A claim retried by the worker who already holds the task (an agent whose first answer was lost)
  // is answered as the success it was; nothing changes and nothing more is audited.
  if (action === 'start' && task.status === 'in_progress' && task.assignedTo === actor.id) return task;
  const who: WorkflowActor = { id: actor.id, role: actor.role, isProjectOwner: ownsProject };
  if (!actionsFrom(task.status).includes(action)) {
    const legal = legalActions(task, who);
    throw conflict(
      `Cannot ${VERB[action]} task ${id}: it is ${task.status}; legal actions: ${legal.length ? legal.join(', ') : 'none'}`,
    );
  }
  if (!mayPerform(action, task, who)) {
    if (action === 'start') throw forbidden(`Task ${id} is assigned to ${task.assignedTo}`);
    throw forbidden(`Only the ${describeWho(action)} may ${VERB[action]} task ${id}`);
  }
  if (action === 'complete' && open > 0) {
    throw conflict(`Cannot complete task ${id}: ${open} subtask(s) are still open`);
  }
  throw conflict(`Task ${id} changed concurrently; retry`);
}

function describeWho(action: TaskAction): string {
  const names: Record<Relation, string> = {
    anyone: 'anyone who can see it',
    assignee: 'assignee',
    creator: 'creator',
    projectOwner: 'project owner',
    admin: 'an admin',
  };
  const who = WORKFLOW[action].who.map((relation) => names[relation]);
  return who.length > 1 ? `${who.slice(0, -1).join(', ')} or ${who.at(-1)}` : (who[0] ?? '');
}

export const start = (tx: Db, actor: Actor, requestId: string, id: number) =>
  act(tx, actor, requestId, id, 'start');
export const progress = (tx: Db, actor: Actor, requestId: string, input: TaskProgressInput) =>
  act(tx, actor, requestId, input.id, 'progress', {
    percent: input.percent,
    ...(input.note ? { note: input.note } : {}),
  });
export const submitForReview = (tx: Db, actor: Actor, requestId: string, id: number) =>
  act(tx, actor, requestId, id, 'submitForReview');
export const complete = (tx: Db, actor: Actor, requestId: string, id: number) =>
  act(tx, actor, requestId, id, 'complete');
export const block = (tx: Db, actor: Actor, requestId: string, input: TaskBlockInput) =>
  act(tx, actor, requestId, input.id, 'block', { reason: input.reason });
export const unblock = (tx: Db, actor: Actor, requestId: string, id: number) =>
  act(tx, actor, requestId, id, 'unblock');
export const reopen = (tx: Db, actor: Actor, requestId: string, id: number) =>
  act(tx, actor, requestId, id, 'reopen');

// --- helpers -----------------------------------------------------------------------------------

function jsonValue(value: unknown): unknown {
  return value instanceof Date ? value.toISOString() : value;
}
