import { type SQL, sql } from 'drizzle-orm';
import { expect } from 'vitest';
import type { Role, TaskStatus } from '../../shared/enums.js';
import { expectErrorBody, type HttpResult, type TestApp, trpcData } from './app.js';

/** A registered worker with a token. */
export interface TestActor {
  id: string;
  role: Role;
  token: string;
}

/** Rows of `execute`, whichever driver ran it (postgres.js returns an array, PGlite `{ rows }`). */
export function rowsOf<T = Record<string, unknown>>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  if (result && typeof result === 'object' && 'rows' in result && Array.isArray(result.rows)) {
    return result.rows as T[];
  }
  return [];
}

/** Runs SQL straight on the test database (fixtures, triggers, checks behind the API's back). */
export async function query<T = Record<string, unknown>>(t: TestApp, statement: SQL): Promise<T[]> {
  return rowsOf<T>(await t.db.database.db.execute(statement));
}

/** Asserts a 2xx REST answer and returns its body. */
export function ok<T = any>(result: HttpResult, status = 200): T {
  expect(result.status, result.raw).toBe(status);
  return result.body as T;
}

/** Signs a token for `id` and registers the worker with one authenticated request. */
export async function makeActor(t: TestApp, id: string, options: { role?: Role } = {}): Promise<TestActor> {
  const role = options.role ?? 'user';
  const token = await t.token(id, { role });
  ok(await t.rest('GET', '/api/workers/me', { token }));
  return { id, role, token };
}

/** Registers many actors at once. */
export async function makeActors<K extends string>(
  t: TestApp,
  ids: Record<K, string>,
  roles: Partial<Record<K, Role>> = {},
): Promise<Record<K, TestActor>> {
  const entries = await Promise.all(
    (Object.entries(ids) as [K, string][]).map(
      async ([key, id]) => [key, await makeActor(t, id, { role: roles[key] ?? 'user' })] as const,
    ),
  );
  return Object.fromEntries(entries) as Record<K, TestActor>;
}

/** Creates a project owned by `owner` and adds `members` (role member) and `owners` (role owner). */
export async function makeProject(
  t: TestApp,
  owner: TestActor,
  slug: string,
  options: { members?: TestActor[]; owners?: TestActor[] } = {},
): Promise<{ slug: string }> {
  ok(await t.rest('POST', '/api/projects', { token: owner.token, body: { slug, name: slug } }), 201);
  for (const [role, actors] of [
    ['member', options.members ?? []],
    ['owner', options.owners ?? []],
  ] as const) {
    for (const actor of actors) {
      ok(
        await t.rest('PUT', `/api/projects/${slug}/members/${encodeURIComponent(actor.id)}`, {
          token: owner.token,
          body: { role },
        }),
      );
    }
  }
  return { slug };
}

/** Creates a task through the API (so it gets its `created` audit row) and returns it. */
export async function makeTask(
  t: TestApp,
  actor: TestActor,
  body: Record<string, unknown> = {},
): Promise<any> {
  return ok(
    await t.rest('POST', '/api/tasks', { token: actor.token, body: { title: 'a task', ...body } }),
    201,
  );
}

export interface TaskSeed {
  title?: string;
  status?: TaskStatus;
  assignedTo?: string | null;
  createdBy: string;
  projectSlug?: string | null;
  progressPercent?: number;
  blockedReason?: string | null;
  completed?: boolean;
}

/**
 * Inserts tasks in any state straight into the table, in one statement: for fixtures the API would
 * need many calls to reach. Returns the ids in order. No audit rows are written.
 */
export async function seedTasks(t: TestApp, seeds: TaskSeed[]): Promise<number[]> {
  if (seeds.length === 0) return [];
  const values = seeds.map((s) => {
    const status = s.status ?? 'pending';
    return sql`(${s.title ?? 'seeded'}, ${status}::task_status, ${s.assignedTo ?? null}, ${s.createdBy},
      ${s.projectSlug ?? null}, ${s.progressPercent ?? (status === 'completed' ? 100 : 0)},
      ${s.blockedReason ?? (status === 'blocked' ? 'seeded as blocked' : null)},
      ${status === 'completed' ? sql`now()` : sql`null`})`;
  });
  const rows = await query<{ id: number }>(
    t,
    sql`insert into tasks (title, status, assigned_to, created_by, project_slug, progress_percent, blocked_reason, completed_at)
        values ${sql.join(values, sql`, `)} returning id`,
  );
  return rows.map((row) => Number(row.id));
}

/** The stored row of a task, as the API would show it, or undefined. */
export async function taskRow(t: TestApp, id: number): Promise<Record<string, unknown> | undefined> {
  const [row] = await query(t, sql`select * from tasks where id = ${id}`);
  return row;
}

export interface AuditRowView {
  id: number;
  action: string;
  actorId: string;
  taskId: number | null;
  projectSlug: string | null;
  context: Record<string, unknown>;
}

/** Audit rows straight from the table, oldest first, optionally only those after `afterId`. */
export async function auditRows(
  t: TestApp,
  filter: { taskId?: number; projectSlug?: string; afterId?: number } = {},
): Promise<AuditRowView[]> {
  const conditions: SQL[] = [sql`true`];
  if (filter.taskId !== undefined) conditions.push(sql`task_id = ${filter.taskId}`);
  if (filter.projectSlug !== undefined) conditions.push(sql`project_slug = ${filter.projectSlug}`);
  if (filter.afterId !== undefined) conditions.push(sql`id > ${filter.afterId}`);
  const rows = await query<Record<string, unknown>>(
    t,
    sql`select id, action, actor_id, task_id, project_slug, context from audit_log
        where ${sql.join(conditions, sql` and `)} order by id`,
  );
  return rows.map((row) => ({
    id: Number(row.id),
    action: String(row.action),
    actorId: String(row.actor_id),
    taskId: row.task_id === null ? null : Number(row.task_id),
    projectSlug: (row.project_slug as string | null) ?? null,
    context: (typeof row.context === 'string' ? JSON.parse(row.context) : row.context) as Record<
      string,
      unknown
    >,
  }));
}

/** The id of the newest audit row (0 when empty): a mark to compare "what was written since". */
export async function lastAuditId(t: TestApp): Promise<number> {
  const [row] = await query<{ id: number | null }>(t, sql`select max(id) as id from audit_log`);
  return Number(row?.id ?? 0);
}

/**
 * Asserts exactly the audit rows written since `mark`, oldest first, each matching the partial
 * expectation at its position.
 */
export async function expectAuditRows(
  t: TestApp,
  mark: number,
  expected: Partial<AuditRowView>[],
): Promise<AuditRowView[]> {
  const rows = await auditRows(t, { afterId: mark });
  expect(rows).toHaveLength(expected.length);
  expected.forEach((entry, index) => {
    expect(rows[index]).toMatchObject(entry);
  });
  return rows;
}

/** Asserts the API error body of a REST error or the equivalent tRPC error, whichever `result` is. */
export function expectFailure(
  result: HttpResult,
  surface: 'rest' | 'trpc',
  status: number,
  code: string,
  reason?: string,
): string {
  if (surface === 'rest') {
    expectErrorBody(result, status, code);
    if (reason) expect(result.body.reason).toBe(reason);
    return result.body.error as string;
  }
  expect(result.status, result.raw).toBe(status);
  expect(result.body.error.data).toMatchObject({ code, httpStatus: status });
  if (reason) expect(result.body.error.data.reason).toBe(reason);
  return result.body.error.message as string;
}

/** tRPC result data or the REST body, for a successful call on either surface. */
export function dataOf<T = any>(result: HttpResult, surface: 'rest' | 'trpc', status = 200): T {
  return surface === 'rest' ? ok<T>(result, status) : trpcData<T>(result);
}
