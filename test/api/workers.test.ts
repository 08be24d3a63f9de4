import { type SQL, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VerifiedClaims } from '../../server/auth/verifier.js';
import { WorkerRegistry } from '../../server/services/worker-service.js';
import { createTestApp, expectErrorBody, type HttpResult, type TestApp, trpcData } from '../helpers/app.js';

let t: TestApp;
let admin: string;
beforeAll(async () => {
  t = await createTestApp({ listen: true });
  admin = await t.token('root', { role: 'admin', email: 'root@example.com' });
});
afterAll(() => t.close());

async function rows<T = any>(statement: SQL): Promise<T[]> {
  const result: any = await t.db.database.db.execute(statement);
  return Array.isArray(result) ? result : result.rows;
}

const auditOf = (workerId: string) =>
  rows(
    sql`select actor_id as "actorId", actor_type as "actorType", action, task_id as "taskId", context
        from audit_log where actor_id = ${workerId} or context->>'workerId' = ${workerId} order by id`,
  );

function expectTrpcError(result: HttpResult, status: number, code: string): void {
  expect(result.status, result.raw).toBe(status);
  expect(result.body.error.data.code).toBe(code);
}

describe('registering humans on first sight', () => {
  it('registers a human on their first authenticated request, with the id, email and name of the token', async () => {
    const token = await t.token('ann', { name: 'Ann Lee', email: 'ann@example.com' });
    const rest = await t.rest('GET', '/api/workers/me', { token });
    expect(rest.status, rest.raw).toBe(200);
    expect(rest.body).toMatchObject({
      id: 'ann',
      type: 'human',
      name: 'Ann Lee',
      email: 'ann@example.com',
      capabilities: [],
      role: 'user',
    });
    expect(trpcData(await t.trpcQuery('workers.me', {}, token))).toEqual(rest.body);
    expect(await auditOf('ann')).toEqual([
      {
        actorId: 'ann',
        actorType: 'human',
        action: 'worker_registered',
        taskId: null,
        context: { workerId: 'ann', type: 'human', via: 'first-request' },
      },
    ]);
  });

  it('does not write to the database on later requests', async () => {
    const token = await t.token('ann', { name: 'Ann Lee', email: 'ann@example.com' });
    // Any UPDATE, even of lastSeenAt alone, makes a new row version with a new xmin.
    const version = () => rows(sql`select xmin::text as v, last_seen_at from workers where id = 'ann'`);
    const before = await version();
    for (let i = 0; i < 5; i++) {
      expect((await t.rest('GET', '/api/tasks', { token })).status).toBe(200);
      expect((await t.trpcQuery('workers.me', {}, token)).status).toBe(200);
    }
    expect(await version()).toEqual(before);
    expect(await auditOf('ann')).toHaveLength(1);
  });

  it('registers a worker once when its first requests arrive together', async () => {
    const token = await t.token('burst');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        i % 2 ? t.rest('GET', '/api/workers/me', { token }) : t.trpcQuery('workers.me', {}, token),
      ),
    );
    for (const result of results) expect(result.status, result.raw).toBe(200);
    expect(await rows(sql`select id from workers where id = 'burst'`)).toHaveLength(1);
    expect(await auditOf('burst')).toHaveLength(1);
  });

  it('takes the role from the token each time, not from the registry', async () => {
    const asAdmin = await t.rest('GET', '/api/workers/me', {
      token: await t.token('ann', { role: 'admin' }),
    });
    expect(asAdmin.body.role).toBe('admin');
    const asUser = await t.rest('GET', '/api/workers/me', { token: await t.token('ann') });
    expect(asUser.body.role).toBe('user');
  });

  it('does not let a token from the auth server declare itself an agent', async () => {
    const token = await t.jwks.sign({ sub: '@self-made', role: 'user', worker_type: 'agent' });
    const me = await t.rest('GET', '/api/workers/me', { token });
    expect(me.body.type).toBe('human');
  });

  it('keeps a human profile in step with the auth server, but not an agent profile', async () => {
    // The registry refreshes a known worker when its cache entry lapses: forget() stands in for that.
    const db = t.db.database.db;
    const registry = new WorkerRegistry();
    const claims = (sub: string, email: string, name: string): VerifiedClaims => ({
      expiresAt: Date.now() + 3_600_000,
      sub,
      email,
      name,
      role: 'user',
      declaredType: null,
    });
    await registry.actorFor(db, claims('ann', 'ann.lee@example.com', 'Ann L.'), 'req-1');
    const [ann] = await rows(sql`select email, name from workers where id = 'ann'`);
    expect(ann).toEqual({ email: 'ann.lee@example.com', name: 'Ann L.' });

    const registered = await t.rest('POST', '/api/workers', {
      token: admin,
      body: { id: '@profile-bot', name: 'Profile bot', email: 'bot@example.com' },
    });
    expect(registered.status, registered.raw).toBe(201);
    const actor = await registry.actorFor(db, claims('@profile-bot', 'evil@example.com', 'Evil'), 'req-2');
    expect(actor.type).toBe('agent');
    const [bot] = await rows(sql`select email, name from workers where id = '@profile-bot'`);
    expect(bot).toEqual({ email: 'bot@example.com', name: 'Profile bot' });
  });
});

describe('reading the registry', () => {
  it('lists every worker by id and gets one, identically over REST and tRPC', async () => {
    const token = await t.token('ann');
    const list = await t.rest('GET', '/api/workers', { token });
    expect(list.status, list.raw).toBe(200);
    const ids = list.body.map((w: any) => w.id);
    expect(ids).toEqual(expect.arrayContaining(['ann', 'burst', 'root']));
    expect(ids).toEqual([...ids].sort());
    expect(trpcData(await t.trpcQuery('workers.list', {}, token))).toEqual(list.body);

    const one = await t.rest('GET', '/api/workers/root', { token });
    // ann shares no project with root: an email is shown only to admins, the worker and project mates.
    expect(one.body).toMatchObject({ id: 'root', type: 'human', email: null });
    expect(one.body.role).toBeUndefined();
    expect(trpcData(await t.trpcQuery('workers.get', { id: 'root' }, token))).toEqual(one.body);
  });

  it('answers GET /api/workers/me with the caller even when a worker is called "me" (the literal route comes first)', async () => {
    // REST routes match in registration order: were /workers/{id} registered before /workers/me,
    // `me` would be taken as an id and this would answer the agent called "me".
    expect(
      (await t.rest('POST', '/api/workers', { token: admin, body: { id: 'me', name: 'An agent called me' } }))
        .status,
    ).toBe(201);
    const token = await t.token('ann');
    const me = await t.rest('GET', '/api/workers/me', { token });
    expect(me.status, me.raw).toBe(200);
    expect(me.body).toMatchObject({ id: 'ann', role: 'user' });
    const asAdmin = await t.rest('GET', '/api/workers/me', { token: admin });
    expect(asAdmin.body).toMatchObject({ id: 'root', role: 'admin' });
  });

  it('answers 404 for an unknown worker', async () => {
    const token = await t.token('ann');
    expectErrorBody(await t.rest('GET', '/api/workers/nobody', { token }), 404, 'NOT_FOUND');
    expectTrpcError(await t.trpcQuery('workers.get', { id: 'nobody' }, token), 404, 'NOT_FOUND');
  });

  it('answers 401 to every workers operation without a token', async () => {
    expectErrorBody(await t.rest('GET', '/api/workers'), 401, 'UNAUTHORIZED');
    expectErrorBody(await t.rest('GET', '/api/workers/ann'), 401, 'UNAUTHORIZED');
    expectErrorBody(
      await t.rest('POST', '/api/workers', { body: { id: '@x', name: 'x' } }),
      401,
      'UNAUTHORIZED',
    );
    expectTrpcError(await t.trpcQuery('workers.list', {}), 401, 'UNAUTHORIZED');
    expectTrpcError(await t.trpcQuery('workers.get', { id: 'ann' }), 401, 'UNAUTHORIZED');
    expectTrpcError(await t.trpcMutation('workers.register', { id: '@x', name: 'x' }), 401, 'UNAUTHORIZED');
  });
});

describe('registering agents', () => {
  it('answers 403 to a non-admin, on REST and tRPC, and registers nothing', async () => {
    const token = await t.token('ann');
    const body = { id: '@sneaky-bot', name: 'Sneaky' };
    expectErrorBody(await t.rest('POST', '/api/workers', { token, body }), 403, 'FORBIDDEN');
    expectTrpcError(await t.trpcMutation('workers.register', body, token), 403, 'FORBIDDEN');
    expect(await rows(sql`select id from workers where id = '@sneaky-bot'`)).toEqual([]);
    expect(await auditOf('@sneaky-bot')).toEqual([]);
  });

  it('answers 400 with the issues for a bad registration', async () => {
    const bad = { id: 'has space', name: '', capabilities: 'x' };
    const rest = await t.rest('POST', '/api/workers', { token: admin, body: bad });
    expectErrorBody(rest, 400, 'BAD_REQUEST');
    expect(rest.body.issues.map((i: any) => i.path[0]).sort()).toEqual(['capabilities', 'id', 'name']);
    expectTrpcError(await t.trpcMutation('workers.register', bad, admin), 400, 'BAD_REQUEST');
  });

  it('lets an admin register an agent (201 on REST), audited as the admin did it', async () => {
    const rest = await t.rest('POST', '/api/workers', {
      token: admin,
      body: { id: '@release-bot', name: 'Release bot', capabilities: ['deploy', 'notes', 'deploy'] },
    });
    expect(rest.status, rest.raw).toBe(201);
    expect(rest.body).toMatchObject({
      id: '@release-bot',
      type: 'agent',
      name: 'Release bot',
      email: null,
      capabilities: ['deploy', 'notes'],
    });
    const viaTrpc = trpcData(
      await t.trpcMutation('workers.register', { id: '@triage-bot', name: 'Triage bot' }, admin),
    );
    expect(viaTrpc).toMatchObject({ id: '@triage-bot', type: 'agent' });

    expect(await auditOf('@release-bot')).toEqual([
      {
        actorId: 'root',
        actorType: 'human',
        action: 'worker_registered',
        taskId: null,
        context: { workerId: '@release-bot', type: 'agent', capabilities: ['deploy', 'notes'] },
      },
    ]);
    const listed = await t.rest('GET', '/api/workers/@release-bot', { token: admin });
    expect(listed.body.type).toBe('agent');
  });

  // trpc-to-openapi takes path parameters from the raw pathname; server/patches/ decodes them.
  it('finds an agent by its percent-encoded id (GET /api/workers/%40release-bot)', async () => {
    const listed = await t.rest('GET', '/api/workers/%40release-bot', { token: admin });
    expect(listed.status, listed.raw).toBe(200);
  });

  it("audits an agent's own actions with actorType agent, on REST and tRPC", async () => {
    const token = await t.token('@release-bot');
    const me = await t.rest('GET', '/api/workers/me', { token });
    expect(me.body).toMatchObject({ id: '@release-bot', type: 'agent', name: 'Release bot' });

    const created = await t.rest('POST', '/api/tasks', { token, body: { title: 'Cut 1.2.0' } });
    expect(created.status, created.raw).toBe(201);
    const started = await t.rest('POST', `/api/tasks/${created.body.id}/start`, { token, body: {} });
    expect(started.status, started.raw).toBe(200);
    const viaTrpc = trpcData(await t.trpcMutation('tasks.create', { title: 'Write notes' }, token));

    const actions = await rows(
      sql`select task_id as "taskId", action, actor_type as "actorType" from audit_log
          where actor_id = '@release-bot' order by id`,
    );
    expect(actions).toEqual([
      { taskId: created.body.id, action: 'created', actorType: 'agent' },
      { taskId: created.body.id, action: 'started', actorType: 'agent' },
      { taskId: viaTrpc.id, action: 'created', actorType: 'agent' },
    ]);
    // and the audit API says the same
    const audit = await t.rest('GET', `/api/audit?actorId=${encodeURIComponent('@release-bot')}`, {
      token: admin,
    });
    expect(audit.status, audit.raw).toBe(200);
    expect(audit.body.items.map((e: any) => e.actorType)).toEqual(['agent', 'agent', 'agent']);
  });

  it('turns a worker first seen as a human into an agent at once when an admin registers it', async () => {
    const token = await t.token('@late-bot');
    expect((await t.rest('GET', '/api/workers/me', { token })).body.type).toBe('human');
    const registered = await t.rest('POST', '/api/workers', {
      token: admin,
      body: { id: '@late-bot', name: 'Late bot' },
    });
    expect(registered.status, registered.raw).toBe(201);
    expect((await t.rest('GET', '/api/workers/me', { token })).body.type).toBe('agent');
    const task = trpcData(await t.trpcMutation('tasks.create', { title: 'after registration' }, token));
    const [row] = await rows(
      sql`select actor_type as "actorType" from audit_log where task_id = ${task.id} and action = 'created'`,
    );
    expect(row).toEqual({ actorType: 'agent' });
  });
});
