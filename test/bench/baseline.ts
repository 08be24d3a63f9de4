/**
 * The benchmark's baseline: the limit of the stack. A bare Fastify server on postgres.js, no tRPC,
 * no zod, no drizzle, no logging, doing the work each benchmark scenario must do and nothing else:
 * verify the bearer JWT with jose against the same JWKS (same algorithms, issuer, audience, clock
 * tolerance), look the worker's type up once (TaskFlow's registry caches it too), run the SQL
 * TaskFlow runs (the same statements, visibility condition included, as prepared statements), write
 * the audit row of a write in the same transaction, and answer the same JSON, byte for byte.
 *
 * Env: PORT, HOST (127.0.0.1), DATABASE_URL, AUTH_JWKS_URL, AUTH_ISSUER, AUTH_AUDIENCE, DB_POOL_MAX (10).
 * Only the routes the benchmark drives exist; anything off the happy path is a plain error status.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import postgres from 'postgres';

const env = process.env;
const sql = postgres(env.DATABASE_URL ?? '', {
  max: Number(env.DB_POOL_MAX ?? 10),
  idle_timeout: 30,
  onnotice: () => {},
  connection: { application_name: 'taskflow-bench-baseline' },
});
const jwks = createRemoteJWKSet(new URL(env.AUTH_JWKS_URL ?? ''));
const verifyOptions = {
  algorithms: ['EdDSA', 'ES256', 'RS256', 'PS256'],
  clockTolerance: 5,
  requiredClaims: ['sub', 'exp'],
  issuer: env.AUTH_ISSUER ?? '',
  audience: env.AUTH_AUDIENCE ?? '',
};

interface Actor {
  id: string;
  type: 'human' | 'agent';
  admin: boolean;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const types = new Map<string, Actor['type']>();

async function actorOf(request: FastifyRequest): Promise<Actor> {
  const match = /^Bearer +([A-Za-z0-9._~+/-]+=*) *$/i.exec(request.headers.authorization ?? '');
  if (!match?.[1]) throw new HttpError(401, 'Missing bearer token');
  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(match[1], jwks, verifyOptions));
  } catch {
    throw new HttpError(401, 'Invalid token');
  }
  const id = String(payload.sub);
  let type = types.get(id);
  if (type === undefined) {
    const [row] = await sql<{ type: Actor['type'] }[]>`select type from workers where id = ${id}`;
    if (!row) throw new HttpError(401, 'Unknown worker');
    type = row.type;
    types.set(id, type);
  }
  const role = payload.role;
  const admin = Array.isArray(role)
    ? role.includes('admin')
    : typeof role === 'string' && role.split(',').some((r) => r.trim() === 'admin');
  return { id, type, admin };
}

// Visibility, the same condition TaskFlow puts in every task query.
function visible(actor: Actor) {
  if (actor.admin) return sql`true`;
  return sql`(tasks.project_slug in (select project_slug from project_members where worker_id = ${actor.id})
    or (tasks.project_slug is null and (tasks.created_by = ${actor.id} or tasks.assigned_to = ${actor.id})))`;
}

const COLUMNS = sql`tasks.id, tasks.title, tasks.description, tasks.status, tasks.priority, tasks.progress_percent,
  tasks.assigned_to, tasks.project_slug, tasks.parent_id, tasks.labels, tasks.due_date, tasks.blocked_reason,
  tasks.created_by, tasks.created_at, tasks.updated_at, tasks.completed_at, tasks.version,
  tasks.required_capabilities, tasks.lease_expires_at`;

interface TaskRow {
  id: number;
  title: string;
  description: string | null;
  status: string;
  priority: string;
  progress_percent: number;
  assigned_to: string | null;
  project_slug: string | null;
  parent_id: number | null;
  labels: string[];
  due_date: Date | null;
  blocked_reason: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  completed_at: Date | null;
  version: number;
  required_capabilities: string[];
  lease_expires_at: Date | null;
}

function toTask(row: TaskRow) {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    status: row.status,
    priority: row.priority,
    progressPercent: row.progress_percent,
    assignedTo: row.assigned_to,
    projectSlug: row.project_slug,
    parentId: row.parent_id,
    labels: row.labels,
    dueDate: row.due_date ? row.due_date.toISOString() : null,
    blockedReason: row.blocked_reason,
    createdBy: row.created_by,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
    completedAt: row.completed_at ? row.completed_at.toISOString() : null,
    version: row.version,
    requiredCapabilities: row.required_capabilities,
    leaseExpiresAt: row.lease_expires_at ? row.lease_expires_at.toISOString() : null,
  };
}

function idOf(value: unknown): number {
  const id = Number(value);
  if (!Number.isInteger(id) || id < 1 || id > 2_147_483_647) throw new HttpError(400, 'Invalid id');
  return id;
}

async function getTask(actor: Actor, id: number) {
  const [row] = await sql<
    TaskRow[]
  >`select ${COLUMNS} from tasks where tasks.id = ${id} and ${visible(actor)}`;
  if (!row) throw new HttpError(404, `Task ${id} not found`);
  return toTask(row);
}

// Keyset cursors in TaskFlow's format (base64url JSON), createdAt only: what the benchmark pages by.
function decodeCursor(cursor: string): { v: string; id: number } {
  const c = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (c?.k !== 'tasks' || c.s !== 'createdAt' || c.o !== 'desc' || typeof c.id !== 'number') {
    throw new HttpError(400, 'cursor is not valid');
  }
  return { v: c.v, id: c.id };
}

function encodeCursor(row: TaskRow): string {
  const position = { k: 'tasks', s: 'createdAt', o: 'desc', v: row.created_at.toISOString(), id: row.id };
  return Buffer.from(JSON.stringify(position)).toString('base64url');
}

async function listTasks(actor: Actor, query: Record<string, string | string[] | undefined>) {
  const statuses = query.status === undefined ? null : ([] as string[]).concat(query.status);
  const limit = query.limit === undefined ? 50 : Number(query.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > 100) throw new HttpError(400, 'Invalid limit');
  const after = typeof query.cursor === 'string' ? decodeCursor(query.cursor) : null;
  const rows =
    typeof query.q === 'string'
      ? await searchTasks(actor, query.q, limit)
      : await sql<TaskRow[]>`
    select ${COLUMNS} from tasks
    where ${visible(actor)}
      ${statuses ? sql`and tasks.status in ${sql(statuses)}` : sql``}
      ${typeof query.project === 'string' ? sql`and tasks.project_slug = ${query.project}` : sql``}
      ${after ? sql`and (tasks.created_at, tasks.id) < (${after.v}::timestamptz, ${after.id})` : sql``}
    order by tasks.created_at desc, tasks.id desc
    limit ${limit + 1}`;
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return { items: items.map(toTask), nextCursor: rows.length > limit && last ? encodeCursor(last) : null };
}

// The search scenario's query (first pages only): the rows the actor may see (read through their
// indexes, as TaskFlow does), matched by ILIKE on title or description (trigram indexes).
async function searchTasks(actor: Actor, q: string, limit: number) {
  const pattern = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  const scope = actor.admin
    ? sql`true`
    : sql`(tasks.project_slug = any(array(select project_slug from project_members where worker_id = ${actor.id}))
        or (tasks.project_slug is null and tasks.created_by = ${actor.id})
        or (tasks.project_slug is null and tasks.assigned_to = ${actor.id}))`;
  return sql<TaskRow[]>`
    select * from (
      select ${COLUMNS} from tasks
      where ${scope} and (tasks.title ilike ${pattern} or tasks.description ilike ${pattern})
      offset 0) found
    order by created_at desc, id desc
    limit ${limit + 1}`;
}

type Tx = postgres.TransactionSql;

async function audit(tx: Tx, actor: Actor, requestId: string, action: string, row: TaskRow, context: object) {
  await tx`insert into audit_log (actor_id, actor_type, action, task_id, project_slug, context, request_id)
    values (${actor.id}, ${actor.type}, ${action}, ${row.id}, ${row.project_slug}, ${sql.json(context as postgres.JSONValue)}, ${requestId})`;
}

interface CreateBody {
  title?: unknown;
  description?: unknown;
  priority?: unknown;
  projectSlug?: unknown;
  labels?: unknown;
}

async function createTask(actor: Actor, requestId: string, body: CreateBody) {
  const title = typeof body.title === 'string' ? body.title.trim() : '';
  if (title.length < 1 || title.length > 200) throw new HttpError(400, 'Invalid title');
  const projectSlug = typeof body.projectSlug === 'string' ? body.projectSlug : null;
  const priority = typeof body.priority === 'string' ? body.priority : 'medium';
  const labels = Array.isArray(body.labels) ? [...new Set(body.labels.map(String))] : [];
  const description = typeof body.description === 'string' ? body.description : null;
  return sql.begin(async (tx) => {
    if (projectSlug) {
      const [project] = await tx`select slug from projects where slug = ${projectSlug}
        and ${actor.admin ? tx`true` : tx`slug in (select project_slug from project_members where worker_id = ${actor.id})`}`;
      if (!project) throw new HttpError(404, `Project ${projectSlug} not found`);
    }
    const [row] = await tx<TaskRow[]>`
      insert into tasks (title, description, priority, project_slug, parent_id, labels, due_date, created_by)
      values (${title}, ${description}, ${priority}, ${projectSlug}, null, ${labels}, null, ${actor.id})
      returning ${COLUMNS}`;
    if (!row) throw new Error('insert returned no row');
    await audit(tx, actor, requestId, 'created', row, {
      title: row.title,
      priority: row.priority,
      parentId: row.parent_id,
      labels: row.labels,
    });
    return toTask(row);
  });
}

type Action = 'start' | 'complete';

// TaskFlow's workflow UPDATE: status, permission, visibility and version checked in one statement.
async function act(actor: Actor, requestId: string, id: number, action: Action) {
  return sql.begin(async (tx) => {
    const rows =
      action === 'start'
        ? await tx<(TaskRow & { prev_status: string })[]>`
          update tasks set status = 'in_progress', assigned_to = ${actor.id}, version = tasks.version + 1, updated_at = now()
          from (select id, version, status, progress_percent from tasks where id = ${id}) prev
          where tasks.id = prev.id and tasks.version = prev.version and tasks.status in ('pending')
            and ${visible(actor)}
            and (tasks.assigned_to is null or tasks.assigned_to = ${actor.id})
          returning ${COLUMNS}, prev.status as prev_status`
        : await tx<(TaskRow & { prev_status: string })[]>`
          update tasks set status = 'completed', progress_percent = 100, completed_at = now(),
            version = tasks.version + 1, updated_at = now()
          from (select id, version, status, progress_percent from tasks where id = ${id}) prev
          where tasks.id = prev.id and tasks.version = prev.version and tasks.status in ('in_progress', 'review')
            and ${visible(actor)}
            and (tasks.assigned_to = ${actor.id} or exists (select 1 from project_members owner
              where owner.project_slug = tasks.project_slug and owner.worker_id = ${actor.id} and owner.role = 'owner'))
            and (select count(*)::int from tasks child where child.parent_id = tasks.id and child.status <> 'completed') = 0
          returning ${COLUMNS}, prev.status as prev_status`;
    const row = rows[0];
    if (!row) throw new HttpError(409, `Cannot ${action} task ${id}`);
    await audit(tx, actor, requestId, action === 'start' ? 'started' : 'completed', row, {
      from: row.prev_status,
      to: row.status,
    });
    return toTask(row);
  });
}

// The work queue (scenario 7), as TaskFlow's claimNext for a member: the first row of each of the
// agent's projects' queues (pending, unassigned, every required capability among the agent's,
// parent not blocked; in the queue's order), locked with FOR UPDATE SKIP LOCKED, and of their own
// project-less tasks; the best of those claimed in one UPDATE, its audit row in the same transaction.
const AGENT_LEASE_SECONDS = 600;

function firstClaimable(actor: Actor, where: postgres.PendingQuery<postgres.Row[]>) {
  return sql`select tasks.id, tasks.priority, tasks.due_date, tasks.created_at from tasks
    where tasks.status = 'pending' and tasks.assigned_to is null
      and (case when tasks.required_capabilities = '{}' then true else tasks.required_capabilities <@
        coalesce((select w.capabilities from workers w where w.id = ${actor.id}), '{}'::text[]) end)
      and not exists (select 1 from tasks parent where parent.id = tasks.parent_id and parent.status = 'blocked')
      and ${where}
    order by tasks.priority desc nulls last, tasks.due_date asc nulls last, tasks.created_at, tasks.id
    limit 1 for update skip locked`;
}

async function claimNext(actor: Actor, requestId: string) {
  const lease = actor.type === 'agent' ? AGENT_LEASE_SECONDS : null;
  return sql.begin(async (tx) => {
    const [row] = await tx<TaskRow[]>`
      update tasks set status = 'in_progress', assigned_to = ${actor.id}, lease_seconds = ${lease}::int,
        lease_expires_at = now() + make_interval(secs => ${lease}::int), version = tasks.version + 1, updated_at = now()
      where tasks.id = (
        select picked.id from (
          select head.* from (select project_slug from project_members where worker_id = ${actor.id}) mine
            cross join lateral (${firstClaimable(actor, sql`tasks.project_slug = mine.project_slug`)}) head
          union all
          select * from (${firstClaimable(actor, sql`tasks.project_slug is null and tasks.created_by = ${actor.id}`)}) own
        ) picked
        order by picked.priority desc nulls last, picked.due_date asc nulls last, picked.created_at, picked.id
        limit 1)
      returning ${COLUMNS}`;
    if (!row) return { task: null };
    await audit(tx, actor, requestId, 'started', row, {
      from: 'pending',
      to: 'in_progress',
      via: 'claimNext',
    });
    return { task: toTask(row) };
  });
}

const app = Fastify({ logger: false });

function fail(reply: FastifyReply, error: unknown) {
  const status = error instanceof HttpError ? error.status : 500;
  return reply.status(status).send({ error: (error as Error).message, status_code: status });
}

app.get('/health', async () => ({ status: 'ok' }));

app.get<{ Params: { id: string } }>('/api/tasks/:id', async (request, reply) => {
  try {
    return await getTask(await actorOf(request), idOf(request.params.id));
  } catch (error) {
    return fail(reply, error);
  }
});

app.get<{ Querystring: Record<string, string | string[]> }>('/api/tasks', async (request, reply) => {
  try {
    return await listTasks(await actorOf(request), request.query);
  } catch (error) {
    return fail(reply, error);
  }
});

app.post<{ Body: CreateBody }>('/api/tasks', async (request, reply) => {
  try {
    const task = await createTask(await actorOf(request), randomUUID(), request.body ?? {});
    return reply.status(201).send(task);
  } catch (error) {
    return fail(reply, error);
  }
});

app.post('/api/tasks/claim-next', async (request, reply) => {
  try {
    return await claimNext(await actorOf(request), randomUUID());
  } catch (error) {
    return fail(reply, error);
  }
});

app.post<{ Params: { id: string; action: string } }>('/api/tasks/:id/:action', async (request, reply) => {
  try {
    const { action } = request.params;
    if (action !== 'start' && action !== 'complete') throw new HttpError(404, 'No route');
    return await act(await actorOf(request), randomUUID(), idOf(request.params.id), action);
  } catch (error) {
    return fail(reply, error);
  }
});

// tRPC's wire format for `tasks.get`, single and batched (`?batch=1`, comma-separated paths).
app.get<{ Params: { path: string }; Querystring: { batch?: string; input?: string } }>(
  '/trpc/:path',
  async (request, reply) => {
    try {
      const actor = await actorOf(request);
      const paths = request.params.path.split(',');
      if (paths.some((p) => p !== 'tasks.get')) throw new HttpError(404, 'No procedure');
      const input = JSON.parse(request.query.input ?? '{}');
      const run = (value: { id?: unknown }) =>
        getTask(actor, idOf(value?.id)).then((data) => ({ result: { data } }));
      if (request.query.batch !== '1') return await run(input);
      return await Promise.all(paths.map((_, i) => run(input[String(i)])));
    } catch (error) {
      return fail(reply, error);
    }
  },
);

async function stop() {
  await app.close();
  await sql.end({ timeout: 5 });
  process.exit(0);
}
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());

await app.listen({ port: Number(env.PORT ?? 8001), host: env.HOST ?? '127.0.0.1' });
