import { and, asc, desc, eq, ilike, inArray, isNull, or, type Placeholder, type SQL, sql } from 'drizzle-orm';
import type { AnyPgColumn } from 'drizzle-orm/pg-core';
import { LRUCache } from 'lru-cache';
import { tasks } from '../../../db/schema/index.js';
import type { TaskSort } from '../../../shared/enums.js';
import type { TaskListQuery } from '../../../shared/schemas/task.js';
import { invalid } from '../../errors.js';
import type { ServiceContext } from '../context.js';
import { decodeCursor, encodeCursor, keysetPage } from '../cursor.js';
import { reusableStatement } from '../reusable-statement.js';
import { taskSearchCandidates, taskVisibleToId } from '../visibility.js';
import { type TaskRow, taskColumns } from './rows.js';

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
  const { ascending } = shape;
  // A member's search starts from its candidates (the rows they may see that may match), never from
  // a sort index walked past every tenant's rows in search of matches (seconds for a caller who sees
  // nothing).
  const candidatesFirst = shape.search && !shape.admin;
  const where = and(
    shape.admin ? undefined : taskVisibleToId(p('actorId')),
    candidatesFirst ? taskSearchCandidates(p('actorId'), p('q')) : undefined,
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
    shape.search ? or(ilike(tasks.title, p('search')), ilike(tasks.description, p('search'))) : undefined,
    shape.updatedSince ? sql`${tasks.updatedAt} >= ${p('updatedSince')}::timestamptz` : undefined,
    shape.after === 'none' ? undefined : keysetAfter(shape.sort, ascending, shape.after === 'null'),
  );
  const ordered = (sortColumn: AnyPgColumn | SQL.Aliased, id: AnyPgColumn | SQL.Aliased) => [
    ascending ? asc(sortColumn) : desc(sortColumn),
    ...(shape.sort === 'dueDate' ? [sql`${sortColumn} is null ${ascending ? sql`asc` : sql`desc`}`] : []),
    ascending ? asc(id) : desc(id),
  ];
  return reusableStatement<TaskRow, Record<string, unknown>>((db) => {
    if (!candidatesFirst) {
      return db
        .select()
        .from(tasks)
        .where(where)
        .orderBy(...ordered(SORT_COLUMNS[shape.sort], tasks.id))
        .limit(p('limit'));
    }
    // OFFSET (always 0) keeps PostgreSQL from merging the subquery into the sorted, limited outer
    // query, where it would again prefer walking a sort index.
    const found = db.select().from(tasks).where(where).offset(p('fence')).as('found');
    return db
      .select()
      .from(found)
      .orderBy(...ordered(found[shape.sort], found.id))
      .limit(p('limit'));
  }, taskColumns);
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

/** Tasks the actor may see, filtered and sorted, one keyset page at a time. */
export async function list(
  ctx: ServiceContext,
  query: TaskListQuery,
): Promise<{ items: TaskRow[]; nextCursor: string | null }> {
  const { actor } = ctx;
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
  if (query.q) {
    values.search = `%${escapeLike(query.q)}%`;
    values.q = query.q;
    values.fence = 0;
  }
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
  const rows = await statement(ctx.tx, values);
  return keysetPage(rows, query.limit, (last) =>
    encodeCursor('tasks', { s: query.sort, o: query.order, v: sortValueOf(last, query.sort), id: last.id }),
  );
}
