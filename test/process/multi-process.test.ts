import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { expectErrorBody, type HttpResult } from '../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { JwksServer } from '../helpers/jwks-server.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';
import {
  killStrays,
  productionEnv,
  type RunningServer,
  requestJson,
  startPair,
} from '../helpers/spawn-server.js';

const ACTORS = 100;

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index] as T, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

// Reliability issue, "Done when": two TaskFlow processes on different ports against one database:
// 100 concurrent claims of one task spread over both have exactly one winner, and idempotent retries
// work across the two processes (the server keeps no state of its own).
describePostgresOnly('two TaskFlow processes against one database', () => {
  let jwks: JwksServer | undefined;
  let db: TestDatabase | undefined;
  let sql: postgres.Sql | undefined;
  let servers: RunningServer[] = [];
  const tokens = new Map<string, string>();
  const owner = 'mp-owner';
  const actors = Array.from({ length: ACTORS }, (_, i) => `mp-w${String(i).padStart(3, '0')}`);
  const slug = 'mp';

  /** A request to server `n % 2` over real HTTP. */
  async function send(
    n: number,
    method: string,
    path: string,
    actor: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<HttpResult> {
    const server = servers[n % servers.length];
    if (!server) throw new Error('no server');
    return requestJson(`${server.url}${path}`, {
      method,
      token: tokens.get(actor),
      body,
      headers,
      timeoutMs: 20_000,
    });
  }

  async function auditCount(taskId: number, action: string): Promise<{ actor_id: string }[]> {
    if (!sql) throw new Error('no sql');
    return sql`select actor_id from audit_log where task_id = ${taskId} and action = ${action}`;
  }

  beforeAll(async () => {
    jwks = new JwksServer();
    await jwks.addKey('EdDSA');
    await jwks.start();
    for (const actor of [owner, ...actors]) {
      tokens.set(actor, await jwks.sign({ sub: actor, role: 'user', name: actor }));
    }
    db = await createTestDatabase();
    if (!db.url) throw new Error('no database url');
    sql = postgres(db.url, { max: 2, onnotice: () => {} });
    const env = productionEnv(db.url, jwks.url);
    servers = await startPair(env);
    expect(new Set(servers.map((s) => s.child.pid)).size).toBe(2);

    // A project of the owner with all 100 actors as members, registered and added over both servers.
    const project = await send(0, 'POST', '/api/projects', owner, { slug, name: 'Multi-process' });
    expect(project.status, project.raw).toBe(201);
    await pool(actors, 10, async (actor, i) => {
      const me = await send(i, 'GET', '/api/workers/me', actor);
      expect(me.status, me.raw).toBe(200);
      const member = await send(i + 1, 'PUT', `/api/projects/${slug}/members/${actor}`, owner, {});
      expect(member.status, member.raw).toBe(200);
    });
  }, 120_000);

  afterAll(async () => {
    killStrays();
    await sql?.end({ timeout: 5 });
    await db?.cleanup();
    await jwks?.stop();
  });

  it('100 concurrent claims of one task over both processes: exactly one 200, 99 × 409, one started row', async () => {
    const created = await send(0, 'POST', '/api/tasks', owner, { title: 'claim me', projectSlug: slug });
    expect(created.status, created.raw).toBe(201);
    const id = created.body.id as number;

    const results = await Promise.all(
      actors.map((actor, i) => send(i, 'POST', `/api/tasks/${id}/start`, actor, {})),
    );
    const winners = results.flatMap((r, i) => (r.status === 200 ? [actors[i] as string] : []));
    const statuses = results.reduce<Record<number, number>>((acc, r) => {
      acc[r.status] = (acc[r.status] ?? 0) + 1;
      return acc;
    }, {});
    console.log(`multi-process: claims over two servers → ${JSON.stringify(statuses)}, winner ${winners[0]}`);
    expect(winners).toHaveLength(1);
    const winner = winners[0] as string;
    for (const r of results) {
      if (r.status === 200) {
        expect(r.body).toMatchObject({ id, status: 'in_progress', assignedTo: winner, version: 2 });
      } else {
        expectErrorBody(r, 409, 'CONFLICT');
      }
    }
    // Both processes answered claims and both had losers (even ids went to one, odd to the other).
    expect(results.filter((_, i) => i % 2 === 0).some((r) => r.status === 409)).toBe(true);
    expect(results.filter((_, i) => i % 2 === 1).some((r) => r.status === 409)).toBe(true);

    const started = await auditCount(id, 'started');
    expect(started).toEqual([{ actor_id: winner }]);
    for (const n of [0, 1]) {
      const read = await send(n, 'GET', `/api/tasks/${id}`, owner);
      expect(read.status, read.raw).toBe(200);
      expect(read.body).toMatchObject({ status: 'in_progress', assignedTo: winner, version: 2 });
    }

    // The winner claiming again on the other process without its first claim's key is refused:
    // a second replica of the same identity must not believe it won too.
    const winnerIndex = actors.indexOf(winner);
    const again = await send(winnerIndex + 1, 'POST', `/api/tasks/${id}/start`, winner, {});
    expectErrorBody(again, 409, 'CONFLICT');
    expect(again.body.reason).toBe('ALREADY_HELD');
    expect(await auditCount(id, 'started')).toHaveLength(1);
  });

  it('64 concurrent claimNext calls over both processes share 40 tasks: 40 distinct, 24 null, no error', async () => {
    if (!sql) throw new Error('no sql');
    const queue = 'mp-queue';
    const created = await send(0, 'POST', '/api/projects', owner, { slug: queue, name: 'Queue' });
    expect(created.status, created.raw).toBe(201);
    const takers = actors.slice(0, 64);
    await pool(takers, 10, async (actor, i) => {
      const member = await send(i, 'PUT', `/api/projects/${queue}/members/${actor}`, owner, {});
      expect(member.status, member.raw).toBe(200);
    });
    await sql`insert into tasks (title, created_by, project_slug)
      select 'queued ' || n, ${owner}, ${queue} from generate_series(1, 40) n`;
    const results = await Promise.all(
      takers.map((actor, i) => send(i, 'POST', '/api/tasks/claim-next', actor, { project: queue })),
    );
    expect(results.filter((r) => r.status !== 200).map((r) => r.raw)).toEqual([]);
    const won = results.map((r) => r.body.task as { id: number } | null).filter((task) => task !== null);
    expect(won).toHaveLength(40);
    expect(new Set(won.map((task) => task.id)).size).toBe(40);
    expect(results.filter((r) => r.body.task === null)).toHaveLength(24);
    // Both processes handed out tasks.
    expect(results.filter((r, i) => i % 2 === 0 && r.body.task).length).toBeGreaterThan(0);
    expect(results.filter((r, i) => i % 2 === 1 && r.body.task).length).toBeGreaterThan(0);
    const started = await sql`select task_id, count(*)::int as n from audit_log
      where action = 'started' and project_slug = ${queue} group by task_id`;
    expect(started).toHaveLength(40);
    expect(started.every((row) => row.n === 1)).toBe(true);
  });

  it('the same Idempotency-Key sent 10 times concurrently over both processes creates one task', async () => {
    if (!sql) throw new Error('no sql');
    const actor = actors[0] as string;
    const title = `idempotent ${randomBytes(4).toString('hex')}`;
    const body = { title, projectSlug: slug, priority: 'high' };
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        send(i, 'POST', '/api/tasks', actor, body, { 'idempotency-key': 'k1' }),
      ),
    );
    for (const r of results) expect(r.status, r.raw).toBe(201);
    const ids = new Set(results.map((r) => r.body.id));
    expect(ids.size).toBe(1);
    const id = results[0]?.body.id as number;
    for (const r of results) expect(r.body).toEqual(results[0]?.body);

    const rows = await sql`select id from tasks where title = ${title}`;
    expect(rows).toEqual([{ id }]);
    expect(await auditCount(id, 'created')).toEqual([{ actor_id: actor }]);

    // A later retry on either process replays the same answer.
    for (const n of [0, 1]) {
      const again = await send(n, 'POST', '/api/tasks', actor, body, { 'idempotency-key': 'k1' });
      expect(again.status, again.raw).toBe(201);
      expect(again.body).toEqual(results[0]?.body);
    }

    // The same key with another request is refused on both processes, and nothing is written.
    for (const n of [0, 1]) {
      const other = await send(
        n,
        'POST',
        '/api/tasks',
        actor,
        { ...body, title: `${title} (other)` },
        {
          'idempotency-key': 'k1',
        },
      );
      expectErrorBody(other, 422, 'UNPROCESSABLE_CONTENT');
    }
    expect(await sql`select id from tasks where title = ${`${title} (other)`}`).toEqual([]);
    expect(await auditCount(id, 'created')).toHaveLength(1);
  });

  it('the tRPC idempotencyKey input field works across the two processes', async () => {
    if (!sql) throw new Error('no sql');
    const actor = actors[1] as string;
    const title = `trpc idempotent ${randomBytes(4).toString('hex')}`;
    const input = { title, projectSlug: slug, idempotencyKey: 'k2' };
    const first = await send(0, 'POST', '/trpc/tasks.create', actor, input);
    expect(first.status, first.raw).toBe(200);
    const second = await send(1, 'POST', '/trpc/tasks.create', actor, input);
    expect(second.status, second.raw).toBe(200);
    const id = first.body.result.data.id as number;
    expect(second.body.result.data).toEqual(first.body.result.data);
    // Concurrent copies on both processes too.
    const copies = await Promise.all(
      Array.from({ length: 6 }, (_, i) => send(i, 'POST', '/trpc/tasks.create', actor, input)),
    );
    for (const copy of copies) {
      expect(copy.status, copy.raw).toBe(200);
      expect(copy.body.result.data.id).toBe(id);
    }
    expect(await sql`select id from tasks where title = ${title}`).toEqual([{ id }]);
    expect(await auditCount(id, 'created')).toEqual([{ actor_id: actor }]);

    // Another input under k2 is a 422 on tRPC too, with the same code.
    const other = await send(1, 'POST', '/trpc/tasks.create', actor, { ...input, title: `${title} (other)` });
    expect(other.status, other.raw).toBe(422);
    expect(other.body.error.data.code).toBe('UNPROCESSABLE_CONTENT');
  });
});
