import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type HttpResult, type TestApp, trpcData } from '../helpers/app.js';
import {
  auditRows,
  expectAuditRows,
  expectFailure,
  lastAuditId,
  makeActors,
  makeProject,
  makeTask,
  ok,
  query,
  seedTasks,
  type TestActor,
  taskRow,
} from '../helpers/factories.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';

let t: TestApp;
let a: Record<'owner' | 'creator' | 'member' | 'admin' | 'outsider', TestActor>;
const P = 'tasks-main';

beforeAll(async () => {
  t = await createTestApp();
  a = await makeActors(
    t,
    { owner: 'tina', creator: 'chris', member: 'mo', admin: 'ada', outsider: 'oscar' },
    { admin: 'admin' },
  );
  await makeProject(t, a.owner, P, { members: [a.creator, a.member] });
  await makeProject(t, a.outsider, 'tasks-other');
});
afterAll(() => t.close());

/** A task as it would look had it been made by an identical call: ids and clocks blanked. */
function comparable(task: Record<string, unknown>) {
  return {
    ...task,
    id: 0,
    createdAt: 'T',
    updatedAt: 'T',
    completedAt: task.completedAt === null ? null : 'T',
    parentId: task.parentId === null ? null : 'P',
  };
}

describe('every task procedure over REST (path, status) and tRPC, same JSON', () => {
  // Each mutation runs once per surface on two tasks in the same state; the answers must match.
  const PAIRS = [
    {
      procedure: 'update',
      method: 'PATCH',
      path: '',
      status: 200,
      input: { title: 'renamed', labels: ['x'] },
      from: 'pending',
    },
    { procedure: 'start', method: 'POST', path: '/start', status: 200, input: {}, from: 'pending' },
    {
      procedure: 'progress',
      method: 'POST',
      path: '/progress',
      status: 200,
      input: { percent: 40, note: 'n' },
      from: 'in_progress',
    },
    {
      procedure: 'submitForReview',
      method: 'POST',
      path: '/review',
      status: 200,
      input: {},
      from: 'in_progress',
    },
    { procedure: 'complete', method: 'POST', path: '/complete', status: 200, input: {}, from: 'review' },
    {
      procedure: 'block',
      method: 'POST',
      path: '/block',
      status: 200,
      input: { reason: 'r' },
      from: 'pending',
    },
    { procedure: 'unblock', method: 'POST', path: '/unblock', status: 200, input: {}, from: 'blocked' },
    { procedure: 'reopen', method: 'POST', path: '/reopen', status: 200, input: {}, from: 'completed' },
    {
      procedure: 'assign',
      method: 'POST',
      path: '/assign',
      status: 200,
      input: { workerId: 'mo' },
      from: 'pending',
    },
  ] as const;

  for (const pair of PAIRS) {
    it(`tasks.${pair.procedure}: ${pair.method} /api/tasks/{id}${pair.path} → ${pair.status}, same JSON as tRPC`, async () => {
      const actor = pair.procedure === 'start' ? a.member : a.admin;
      const assignedTo = pair.from === 'pending' ? null : a.member.id;
      const [restId, trpcId] = await seedTasks(
        t,
        [0, 1].map(() => ({ status: pair.from, assignedTo, createdBy: a.creator.id, projectSlug: P })),
      );
      const viaRest = await t.rest(pair.method, `/api/tasks/${restId}${pair.path}`, {
        token: actor.token,
        body: pair.input,
      });
      const viaTrpc = await t.trpcMutation(
        `tasks.${pair.procedure}`,
        { id: trpcId, ...pair.input },
        actor.token,
      );
      const restTask = ok(viaRest, pair.status);
      const trpcTask = trpcData(viaTrpc);
      expect(restTask.id).toBe(restId);
      expect(trpcTask.id).toBe(trpcId);
      expect(comparable(restTask)).toEqual(comparable(trpcTask));
      // Every mutation returns the task as it now stands.
      expect(ok(await t.rest('GET', `/api/tasks/${restId}`, { token: actor.token }))).toEqual(restTask);
    });
  }

  it('tasks.create: POST /api/tasks → 201, same JSON as tRPC', async () => {
    const body = { title: 'twin', description: 'd', priority: 'high', projectSlug: P, labels: ['a', 'b'] };
    const viaRest = ok(await t.rest('POST', '/api/tasks', { token: a.creator.token, body }), 201);
    const viaTrpc = trpcData(await t.trpcMutation('tasks.create', body, a.creator.token));
    expect(comparable(viaRest)).toEqual(comparable(viaTrpc));
    expect(viaRest).toMatchObject({ ...body, status: 'pending', version: 1, createdBy: a.creator.id });
  });

  it('tasks.delete: DELETE /api/tasks/{id} → 204 with an empty body; tRPC answers null', async () => {
    const [restId, trpcId] = await seedTasks(t, [
      { createdBy: a.creator.id, projectSlug: P },
      { createdBy: a.creator.id, projectSlug: P },
    ]);
    const viaRest = await t.rest('DELETE', `/api/tasks/${restId}`, { token: a.creator.token });
    expect(viaRest.status).toBe(204);
    expect(viaRest.raw).toBe('');
    const viaTrpc = await t.trpcMutation('tasks.delete', { id: trpcId }, a.creator.token);
    expect(viaTrpc.status).toBe(200);
    expect(viaTrpc.body.result.data ?? null).toBeNull();
    expect(await taskRow(t, restId as number)).toBeUndefined();
    expect(await taskRow(t, trpcId as number)).toBeUndefined();
  });

  it('tasks.get, tasks.list, tasks.history and audit.list: GET → 200 with byte-identical JSON on both surfaces', async () => {
    const task = await makeTask(t, a.creator, {
      projectSlug: P,
      labels: ['parity'],
      dueDate: '2030-01-02T03:04:05.000Z',
    });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    const reads: [HttpResult, HttpResult][] = [
      [
        await t.rest('GET', `/api/tasks/${task.id}`, { token: a.member.token }),
        await t.trpcQuery('tasks.get', { id: task.id }, a.member.token),
      ],
      [
        await t.rest(
          'GET',
          `/api/tasks?project=${P}&label=parity&status=in_progress&sort=dueDate&order=asc&limit=5`,
          {
            token: a.member.token,
          },
        ),
        await t.trpcQuery(
          'tasks.list',
          { project: P, label: 'parity', status: ['in_progress'], sort: 'dueDate', order: 'asc', limit: 5 },
          a.member.token,
        ),
      ],
      [
        await t.rest('GET', `/api/tasks/${task.id}/history`, { token: a.member.token }),
        await t.trpcQuery('tasks.history', { id: task.id }, a.member.token),
      ],
      [
        await t.rest('GET', `/api/audit?taskId=${task.id}&limit=1`, { token: a.member.token }),
        await t.trpcQuery('audit.list', { taskId: task.id, limit: 1 }, a.member.token),
      ],
    ];
    for (const [viaRest, viaTrpc] of reads) {
      expect(viaRest.status, viaRest.raw).toBe(200);
      expect(JSON.stringify(trpcData(viaTrpc))).toBe(viaRest.raw);
    }
    expect(reads[1]?.[0].body.items).toHaveLength(1);
    expect(reads[2]?.[0].body.items.map((e: { action: string }) => e.action)).toEqual(['created', 'started']);
  });

  it('answers the same error code and message on both surfaces', async () => {
    const viaRest = await t.rest('GET', '/api/tasks/999999', { token: a.member.token });
    const viaTrpc = await t.trpcQuery('tasks.get', { id: 999999 }, a.member.token);
    expectErrorBody(viaRest, 404, 'NOT_FOUND');
    expect(viaTrpc.status).toBe(404);
    expect(viaTrpc.body.error.message).toBe(viaRest.body.error);
    expect(viaTrpc.body.error.data.code).toBe('NOT_FOUND');
  });
});

describe('tasks.create', () => {
  it('creates a pending, medium, unassigned task at version 1 and writes one `created` audit row', async () => {
    const mark = await lastAuditId(t);
    const task = await makeTask(t, a.creator, { title: 'plain' });
    expect(task).toMatchObject({
      title: 'plain',
      description: null,
      status: 'pending',
      priority: 'medium',
      progressPercent: 0,
      assignedTo: null,
      projectSlug: null,
      parentId: null,
      labels: [],
      dueDate: null,
      blockedReason: null,
      createdBy: a.creator.id,
      completedAt: null,
      version: 1,
    });
    expect(task.createdAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(task.updatedAt).toBe(task.createdAt);
    await expectAuditRows(t, mark, [{ action: 'created', actorId: a.creator.id, taskId: task.id }]);
  });

  it('trims strings and deduplicates labels', async () => {
    const task = await makeTask(t, a.creator, {
      title: '  padded  ',
      description: '  text ',
      labels: [' a', 'b ', 'a', 'b', 'c'],
    });
    expect(task).toMatchObject({ title: 'padded', description: 'text', labels: ['a', 'b', 'c'] });
  });

  it('keeps a due date as an ISO instant with offset, normalised to UTC', async () => {
    const task = await makeTask(t, a.creator, { dueDate: '2030-06-01T12:00:00+02:00' });
    expect(task.dueDate).toBe('2030-06-01T10:00:00.000Z');
  });

  const BAD: [string, Record<string, unknown>][] = [
    ['an unknown field', { title: 'x', color: 'red' }],
    ['a status (status only changes through the workflow)', { title: 'x', status: 'completed' }],
    ['createdBy (the actor is the creator)', { title: 'x', createdBy: 'someone' }],
    ['a missing title', {}],
    ['a blank title', { title: '   ' }],
    ['a title over 200 characters', { title: 'x'.repeat(201) }],
    ['a description over 10 000 characters', { title: 'x', description: 'd'.repeat(10_001) }],
    ['more than 20 labels', { title: 'x', labels: Array.from({ length: 21 }, (_, i) => `l${i}`) }],
    ['a label over 50 characters', { title: 'x', labels: ['l'.repeat(51)] }],
    ['a blank label', { title: 'x', labels: [' '] }],
    ['an unknown priority', { title: 'x', priority: 'urgent' }],
    ['a due date without offset', { title: 'x', dueDate: '2030-01-01T00:00:00' }],
    ['a due date that is not a date', { title: 'x', dueDate: 'tomorrow' }],
    ['a malformed project slug', { title: 'x', projectSlug: 'Not A Slug' }],
    ['a parentId that is not an integer', { title: 'x', parentId: '1' }],
    ['a title that is not a string', { title: 42 }],
  ];
  for (const [what, body] of BAD) {
    it(`refuses ${what} with 400 and the zod issues, on both surfaces, writing nothing`, async () => {
      const mark = await lastAuditId(t);
      const [{ n: before } = { n: 0 }] = await query<{ n: number }>(
        t,
        sql`select count(*)::int as n from tasks`,
      );
      const viaRest = await t.rest('POST', '/api/tasks', { token: a.creator.token, body });
      expectErrorBody(viaRest, 400, 'BAD_REQUEST');
      expect(viaRest.body.issues).toEqual(expect.any(Array));
      expect(viaRest.body.issues.length).toBeGreaterThan(0);
      const viaTrpc = await t.trpcMutation('tasks.create', body, a.creator.token);
      expectFailure(viaTrpc, 'trpc', 400, 'BAD_REQUEST');
      expect(viaTrpc.body.error.data.issues).toEqual(viaRest.body.issues);
      const [{ n: after } = { n: 0 }] = await query<{ n: number }>(
        t,
        sql`select count(*)::int as n from tasks`,
      );
      expect(after).toBe(before);
      await expectAuditRows(t, mark, []);
    });
  }

  it('is 404 for a project the actor is not a member of', async () => {
    expectErrorBody(
      await t.rest('POST', '/api/tasks', {
        token: a.creator.token,
        body: { title: 'x', projectSlug: 'tasks-other' },
      }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('POST', '/api/tasks', {
        token: a.creator.token,
        body: { title: 'x', projectSlug: 'no-such' },
      }),
      404,
      'NOT_FOUND',
    );
  });
});

describe('tasks.update (PATCH)', () => {
  it('edits fields, bumps the version and writes one `updated` row with before and after of what changed', async () => {
    const task = await makeTask(t, a.creator, {
      projectSlug: P,
      title: 'old',
      labels: ['k'],
      priority: 'low',
    });
    const mark = await lastAuditId(t);
    const updated = ok(
      await t.rest('PATCH', `/api/tasks/${task.id}`, {
        token: a.creator.token,
        body: { title: ' new ', priority: 'low', labels: ['k', 'm', 'm'], dueDate: '2031-01-01T00:00:00Z' },
      }),
    );
    expect(updated).toMatchObject({
      title: 'new',
      priority: 'low',
      labels: ['k', 'm'],
      dueDate: '2031-01-01T00:00:00.000Z',
      version: 2,
    });
    const [row] = await expectAuditRows(t, mark, [
      { action: 'updated', actorId: a.creator.id, taskId: task.id },
    ]);
    expect(row?.context).toEqual({
      changes: {
        title: { before: 'old', after: 'new' },
        labels: { before: ['k'], after: ['k', 'm'] },
        dueDate: { before: null, after: '2031-01-01T00:00:00.000Z' },
      },
    });
  });

  it('with the current expectedVersion succeeds; with a stale one is 409 and changes nothing', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P, title: 'v1' });
    ok(
      await t.rest('PATCH', `/api/tasks/${task.id}`, {
        token: a.creator.token,
        body: { title: 'v2', expectedVersion: 1 },
      }),
    );
    const before = await taskRow(t, task.id);
    const mark = await lastAuditId(t);
    for (const surface of ['rest', 'trpc'] as const) {
      const result =
        surface === 'rest'
          ? await t.rest('PATCH', `/api/tasks/${task.id}`, {
              token: a.creator.token,
              body: { title: 'lost update', expectedVersion: 1 },
            })
          : await t.trpcMutation(
              'tasks.update',
              { id: task.id, title: 'lost update', expectedVersion: 1 },
              a.creator.token,
            );
      const message = expectFailure(result, surface, 409, 'CONFLICT');
      expect(message).toContain('version 2');
    }
    expect(await taskRow(t, task.id)).toEqual(before);
    await expectAuditRows(t, mark, []);
  });

  it('refuses `status` with 400 on both surfaces and changes nothing', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    const before = await taskRow(t, task.id);
    expectErrorBody(
      await t.rest('PATCH', `/api/tasks/${task.id}`, {
        token: a.creator.token,
        body: { status: 'completed' },
      }),
      400,
      'BAD_REQUEST',
    );
    expectFailure(
      await t.trpcMutation('tasks.update', { id: task.id, status: 'completed' }, a.creator.token),
      'trpc',
      400,
      'BAD_REQUEST',
    );
    expectErrorBody(
      await t.rest('PATCH', `/api/tasks/${task.id}`, {
        token: a.creator.token,
        body: { title: 'sneaky', status: 'completed' },
      }),
      400,
      'BAD_REQUEST',
    );
    expect(await taskRow(t, task.id)).toEqual(before);
  });

  it.each([
    ['no field at all', {}],
    ['an unknown field', { title: 'x', colour: 'red' }],
    ['version (only expectedVersion)', { version: 3 }],
    ['progressPercent (only through progress)', { progressPercent: 50 }],
    ['a blank title', { title: '  ' }],
    ['a non-integer expectedVersion', { title: 'x', expectedVersion: 1.5 }],
    ['a string expectedVersion', { title: 'x', expectedVersion: '1' }],
  ])('refuses %s with 400', async (_what, body) => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    expectErrorBody(
      await t.rest('PATCH', `/api/tasks/${task.id}`, { token: a.creator.token, body }),
      400,
      'BAD_REQUEST',
    );
  });

  it('lets the creator, the assignee, a project owner and an admin edit; a member gets 403, an outsider 404', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    ok(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.creator.token,
        body: { workerId: a.owner.id },
      }),
    );
    const other = await makeTask(t, a.creator, { projectSlug: P });
    ok(
      await t.rest('POST', `/api/tasks/${other.id}/assign`, {
        token: a.creator.token,
        body: { workerId: a.member.id },
      }),
    );
    for (const actor of [a.creator, a.owner, a.admin]) {
      ok(
        await t.rest('PATCH', `/api/tasks/${task.id}`, {
          token: actor.token,
          body: { title: `by ${actor.id}` },
        }),
      );
    }
    ok(
      await t.rest('PATCH', `/api/tasks/${other.id}`, {
        token: a.member.token,
        body: { title: 'by assignee' },
      }),
    );
    const before = await taskRow(t, task.id);
    expectErrorBody(
      await t.rest('PATCH', `/api/tasks/${task.id}`, { token: a.member.token, body: { title: 'no' } }),
      403,
      'FORBIDDEN',
    );
    expectErrorBody(
      await t.rest('PATCH', `/api/tasks/${task.id}`, { token: a.outsider.token, body: { title: 'no' } }),
      404,
      'NOT_FOUND',
    );
    expect(await taskRow(t, task.id)).toEqual(before);
  });
});

describe('tasks.delete', () => {
  it('lets the creator delete, writes one `deleted` row and the task is then 404', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P, title: 'doomed' });
    const mark = await lastAuditId(t);
    expect((await t.rest('DELETE', `/api/tasks/${task.id}`, { token: a.creator.token })).status).toBe(204);
    await expectAuditRows(t, mark, [
      {
        action: 'deleted',
        actorId: a.creator.id,
        taskId: task.id,
        projectSlug: P,
        context: { title: 'doomed' },
      },
    ]);
    expectErrorBody(
      await t.rest('GET', `/api/tasks/${task.id}`, { token: a.creator.token }),
      404,
      'NOT_FOUND',
    );
    // History outlives the task: the audit log keeps it.
    expect((await auditRows(t, { taskId: task.id })).map((r) => r.action)).toEqual(['created', 'deleted']);
  });

  it('lets an admin delete; the owner and members get 403, an outsider 404, and the task stays', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    for (const actor of [a.owner, a.member]) {
      expectErrorBody(
        await t.rest('DELETE', `/api/tasks/${task.id}`, { token: actor.token }),
        403,
        'FORBIDDEN',
      );
    }
    expectErrorBody(
      await t.rest('DELETE', `/api/tasks/${task.id}`, { token: a.outsider.token }),
      404,
      'NOT_FOUND',
    );
    expect(await taskRow(t, task.id)).toBeDefined();
    expect((await t.rest('DELETE', `/api/tasks/${task.id}`, { token: a.admin.token })).status).toBe(204);
  });

  it('is 409 while the task has subtasks', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P });
    await makeTask(t, a.creator, { projectSlug: P, parentId: parent.id });
    const mark = await lastAuditId(t);
    expectErrorBody(
      await t.rest('DELETE', `/api/tasks/${parent.id}`, { token: a.creator.token }),
      409,
      'CONFLICT',
    );
    expect(await taskRow(t, parent.id)).toBeDefined();
    await expectAuditRows(t, mark, []);
  });
});

describe('tasks.assign', () => {
  it('assigns a project member, writing one `assigned` row with before and after', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    const mark = await lastAuditId(t);
    const assigned = ok(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.creator.token,
        body: { workerId: a.member.id },
      }),
    );
    expect(assigned).toMatchObject({ assignedTo: a.member.id, status: 'pending', version: 2 });
    await expectAuditRows(t, mark, [
      { action: 'assigned', taskId: task.id, context: { before: null, after: a.member.id } },
    ]);
    const cleared = ok(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.creator.token,
        body: { workerId: null },
      }),
    );
    expect(cleared).toMatchObject({ assignedTo: null, version: 3 });
  });

  it('refuses a worker outside the project (400), an unknown worker (404) and a member who may not edit (403)', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.creator.token,
        body: { workerId: a.outsider.id },
      }),
      400,
      'BAD_REQUEST',
    );
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.creator.token,
        body: { workerId: 'nobody' },
      }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, {
        token: a.member.token,
        body: { workerId: a.member.id },
      }),
      403,
      'FORBIDDEN',
    );
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${task.id}/assign`, { token: a.creator.token, body: {} }),
      400,
      'BAD_REQUEST',
    );
    expect(await taskRow(t, task.id)).toMatchObject({ assigned_to: null, version: 1 });
  });

  it('unassigns an in-progress task only as a release (holder, project owner, admin), and never touches a completed one (409)', async () => {
    const [running, done] = await seedTasks(t, [
      { status: 'in_progress', assignedTo: a.member.id, createdBy: a.creator.id, projectSlug: P },
      { status: 'completed', assignedTo: a.member.id, createdBy: a.creator.id, projectSlug: P },
    ]);
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${running}/assign`, {
        token: a.creator.token,
        body: { workerId: null },
      }),
      403,
      'FORBIDDEN',
    );
    const released = ok(
      await t.rest('POST', `/api/tasks/${running}/assign`, {
        token: a.owner.token,
        body: { workerId: null },
      }),
    );
    expect(released).toMatchObject({ status: 'pending', assignedTo: null });
    expectErrorBody(
      await t.rest('POST', `/api/tasks/${done}/assign`, {
        token: a.creator.token,
        body: { workerId: a.owner.id },
      }),
      409,
      'CONFLICT',
    );
  });
});

describe('subtasks', () => {
  it('creates a subtask under a visible parent of the same project and lists it by parentId', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P, title: 'parent' });
    const child = await makeTask(t, a.member, { projectSlug: P, parentId: parent.id, title: 'child' });
    await makeTask(t, a.member, { projectSlug: P, title: 'unrelated' });
    expect(child.parentId).toBe(parent.id);
    const page = ok(await t.rest('GET', `/api/tasks?parentId=${parent.id}`, { token: a.member.token }));
    expect(page.items.map((x: { id: number }) => x.id)).toEqual([child.id]);
  });

  it('refuses a parent that does not exist or is not visible (404) and one of another project (400)', async () => {
    const hidden = await makeTask(t, a.outsider, { projectSlug: 'tasks-other' });
    const loose = await makeTask(t, a.creator, {});
    const mark = await lastAuditId(t);
    for (const parentId of [999_999, hidden.id]) {
      expectErrorBody(
        await t.rest('POST', '/api/tasks', {
          token: a.creator.token,
          body: { title: 'x', projectSlug: P, parentId },
        }),
        404,
        'NOT_FOUND',
      );
    }
    expectErrorBody(
      await t.rest('POST', '/api/tasks', {
        token: a.creator.token,
        body: { title: 'x', projectSlug: P, parentId: loose.id },
      }),
      400,
      'BAD_REQUEST',
    );
    await expectAuditRows(t, mark, []);
  });

  it('refuses a re-parenting that would make a cycle, or a task its own parent (400)', async () => {
    const root = await makeTask(t, a.creator, { projectSlug: P });
    const mid = await makeTask(t, a.creator, { projectSlug: P, parentId: root.id });
    const leaf = await makeTask(t, a.creator, { projectSlug: P, parentId: mid.id });
    for (const [id, parentId] of [
      [root.id, leaf.id],
      [root.id, mid.id],
      [mid.id, mid.id],
    ]) {
      expectErrorBody(
        await t.rest('PATCH', `/api/tasks/${id}`, { token: a.creator.token, body: { parentId } }),
        400,
        'BAD_REQUEST',
      );
    }
    expect(await taskRow(t, root.id)).toMatchObject({ parent_id: null, version: 1 });
    // Moving a subtree elsewhere is fine, and so is detaching.
    const other = await makeTask(t, a.creator, { projectSlug: P });
    expect(
      ok(
        await t.rest('PATCH', `/api/tasks/${mid.id}`, {
          token: a.creator.token,
          body: { parentId: other.id },
        }),
      ),
    ).toMatchObject({
      parentId: other.id,
    });
    expect(
      ok(await t.rest('PATCH', `/api/tasks/${mid.id}`, { token: a.creator.token, body: { parentId: null } })),
    ).toMatchObject({
      parentId: null,
    });
  });

  it('will not complete a parent while a subtask is open (409), and will once they are done', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P });
    const child = await makeTask(t, a.creator, { projectSlug: P, parentId: parent.id });
    ok(await t.rest('POST', `/api/tasks/${parent.id}/start`, { token: a.member.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${child.id}/start`, { token: a.member.token, body: {} }));
    const before = await taskRow(t, parent.id);
    const mark = await lastAuditId(t);
    const refused = await t.rest('POST', `/api/tasks/${parent.id}/complete`, {
      token: a.member.token,
      body: {},
    });
    expectErrorBody(refused, 409, 'CONFLICT');
    expect(refused.body.error).toContain('subtask');
    expect(await taskRow(t, parent.id)).toEqual(before);
    await expectAuditRows(t, mark, []);
    ok(await t.rest('POST', `/api/tasks/${child.id}/complete`, { token: a.member.token, body: {} }));
    expect(
      ok(await t.rest('POST', `/api/tasks/${parent.id}/complete`, { token: a.member.token, body: {} })),
    ).toMatchObject({ status: 'completed' });
  });

  it('will not add a subtask under a completed parent (409)', async () => {
    const [done] = await seedTasks(t, [{ status: 'completed', createdBy: a.creator.id, projectSlug: P }]);
    expectErrorBody(
      await t.rest('POST', '/api/tasks', {
        token: a.creator.token,
        body: { title: 'late', projectSlug: P, parentId: done },
      }),
      409,
      'CONFLICT',
    );
  });
});

describePostgresOnly('subtasks under concurrency (PostgreSQL)', () => {
  /**
   * Holds `first` open mid-transaction, after its checks and row locks, by making its audit insert
   * wait on a table lock taken here; runs `second` while it waits; then lets both through.
   */
  async function interleave(first: () => Promise<HttpResult>, second: () => Promise<HttpResult>) {
    const raw = postgres(t.db.url as string, { max: 1, onnotice: () => {} });
    const waiting = async (n: number) => {
      for (let i = 0; i < 200; i += 1) {
        const [row] = await query<{ n: number }>(
          t,
          sql`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
        );
        if ((row?.n ?? 0) >= n) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`never saw ${n} waiting sessions`);
    };
    try {
      const blocker = await raw.reserve();
      await blocker`begin`;
      await blocker`lock table audit_log in share row exclusive mode`;
      const one = first();
      await waiting(1);
      const two = second();
      await waiting(2);
      await blocker`commit`;
      blocker.release();
      return await Promise.all([one, two]);
    } finally {
      await raw.end({ timeout: 5 });
    }
  }

  const createSubtask = (parentId: number) => () =>
    t.rest('POST', '/api/tasks', {
      token: a.member.token,
      body: { title: 'late subtask', projectSlug: P, parentId },
    });

  it('does not complete a parent whose subtask is being created at that moment (409)', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P });
    ok(await t.rest('POST', `/api/tasks/${parent.id}/start`, { token: a.member.token, body: {} }));
    const [created, completed] = await interleave(createSubtask(parent.id), () =>
      t.rest('POST', `/api/tasks/${parent.id}/complete`, { token: a.member.token, body: {} }),
    );
    expect(created.status, created.raw).toBe(201);
    expectErrorBody(completed, 409, 'CONFLICT');
    expect(completed.body.error).toContain('subtask');
    expect(await taskRow(t, parent.id)).toMatchObject({ status: 'in_progress' });
  });

  it('does not delete a parent whose subtask is being created at that moment (409)', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P });
    const [created, deleted] = await interleave(createSubtask(parent.id), () =>
      t.rest('DELETE', `/api/tasks/${parent.id}`, { token: a.creator.token }),
    );
    expect(created.status, created.raw).toBe(201);
    expectErrorBody(deleted, 409, 'CONFLICT');
    expect(await taskRow(t, parent.id)).toBeDefined();
  });

  it('does not create a subtask under a parent being completed at that moment (409)', async () => {
    const parent = await makeTask(t, a.creator, { projectSlug: P });
    ok(await t.rest('POST', `/api/tasks/${parent.id}/start`, { token: a.member.token, body: {} }));
    const [completed, created] = await interleave(
      () => t.rest('POST', `/api/tasks/${parent.id}/complete`, { token: a.member.token, body: {} }),
      createSubtask(parent.id),
    );
    expect(completed.status, completed.raw).toBe(200);
    expectErrorBody(created, 409, 'CONFLICT');
    expect(await query(t, sql`select id from tasks where parent_id = ${parent.id}`)).toEqual([]);
  });
});

describe('tasks.list filters', () => {
  const F = 'tasks-filters';
  let ids: Record<string, number>;
  beforeAll(async () => {
    await makeProject(t, a.owner, F, { members: [a.creator, a.member] });
    const make = async (key: string, body: Record<string, unknown>, by = a.creator) =>
      [key, (await makeTask(t, by, { projectSlug: F, ...body })).id] as const;
    const entries = [
      await make('alpha', { title: 'Alpha report', priority: 'high', labels: ['docs'] }),
      await make('beta', { title: 'beta', description: 'contains 100% of the Fix_me text', priority: 'low' }),
      await make('gamma', { title: 'Gamma', priority: 'critical', labels: ['docs', 'ops'] }),
      await make('delta', { title: 'delta', priority: 'medium' }),
    ];
    ids = Object.fromEntries(entries);
    ok(await t.rest('POST', `/api/tasks/${ids.alpha}/start`, { token: a.member.token, body: {} }));
    ok(
      await t.rest('POST', `/api/tasks/${ids.gamma}/block`, {
        token: a.creator.token,
        body: { reason: 'r' },
      }),
    );
    ok(
      await t.rest('POST', `/api/tasks/${ids.delta}/assign`, {
        token: a.creator.token,
        body: { workerId: a.owner.id },
      }),
    );
  });

  async function listIds(query: string, actor = a.member): Promise<number[]> {
    const page = ok(
      await t.rest('GET', `/api/tasks?project=${F}&limit=100&${query}`, { token: actor.token }),
    );
    return page.items.map((x: { id: number }) => x.id).sort((x: number, y: number) => x - y);
  }
  const sorted = (...keys: string[]) => keys.map((k) => ids[k] as number).sort((x, y) => x - y);

  it('filters by one status and by several', async () => {
    expect(await listIds('status=in_progress')).toEqual(sorted('alpha'));
    expect(await listIds('status=pending&status=blocked')).toEqual(sorted('beta', 'gamma', 'delta'));
    const viaTrpc = trpcData(
      await t.trpcQuery('tasks.list', { project: F, status: ['pending', 'blocked'] }, a.member.token),
    );
    expect(viaTrpc.items.map((x: { id: number }) => x.id).sort((x: number, y: number) => x - y)).toEqual(
      sorted('beta', 'gamma', 'delta'),
    );
  });

  it('filters by priority, one or several', async () => {
    expect(await listIds('priority=critical')).toEqual(sorted('gamma'));
    expect(await listIds('priority=low&priority=high')).toEqual(sorted('alpha', 'beta'));
  });

  it('filters by assignee: a worker id, `me` and `none`', async () => {
    expect(await listIds(`assignedTo=${a.owner.id}`)).toEqual(sorted('delta'));
    expect(await listIds('assignedTo=me')).toEqual(sorted('alpha'));
    expect(await listIds('assignedTo=me', a.owner)).toEqual(sorted('delta'));
    expect(await listIds('assignedTo=none')).toEqual(sorted('beta', 'gamma'));
  });

  it('filters by project and label', async () => {
    expect(await listIds('label=docs')).toEqual(sorted('alpha', 'gamma'));
    expect(await listIds('label=ops')).toEqual(sorted('gamma'));
    expect(await listIds('label=none-such')).toEqual([]);
    const other = ok(await t.rest('GET', `/api/tasks?project=${P}&limit=100`, { token: a.member.token }));
    expect(other.items.every((x: { projectSlug: string }) => x.projectSlug === P)).toBe(true);
  });

  it('searches title and description case-insensitively, taking % and _ literally', async () => {
    expect(await listIds('q=ALPHA')).toEqual(sorted('alpha'));
    expect(await listIds('q=fix_me')).toEqual(sorted('beta'));
    expect(await listIds(`q=${encodeURIComponent('100%')}`)).toEqual(sorted('beta'));
    expect(await listIds('q=%25')).toEqual(sorted('beta'));
    expect(await listIds('q=_')).toEqual(sorted('beta'));
  });

  it('returns only tasks updated since a timestamp', async () => {
    const [{ at } = { at: '' }] = await query<{ at: string }>(
      t,
      sql`select to_char(max(updated_at) at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as at from tasks where project_slug = ${F}`,
    );
    ok(
      await t.rest('PATCH', `/api/tasks/${ids.beta}`, {
        token: a.creator.token,
        body: { title: 'beta again' },
      }),
    );
    const since = new Date(new Date(at).getTime() + 1).toISOString();
    expect(await listIds(`updatedSince=${encodeURIComponent(since)}`)).toEqual(sorted('beta'));
    expect(await listIds('updatedSince=2000-01-01T00:00:00Z')).toEqual(
      sorted('alpha', 'beta', 'gamma', 'delta'),
    );
  });

  it('combines filters', async () => {
    expect(await listIds('label=docs&status=blocked&priority=critical')).toEqual(sorted('gamma'));
    expect(await listIds('label=docs&status=pending')).toEqual([]);
  });

  it.each([
    ['an unknown parameter', 'colour=red'],
    ['an unknown status', 'status=done'],
    ['limit 0', 'limit=0'],
    ['limit 101', 'limit=101'],
    ['a non-numeric limit', 'limit=ten'],
    ['an unknown sort', 'sort=title'],
    ['a garbage cursor', 'cursor=garbage'],
    ['a malformed updatedSince', 'updatedSince=yesterday'],
    ['a non-numeric parentId', 'parentId=abc'],
  ])('refuses %s with 400', async (_what, queryString) => {
    expectErrorBody(
      await t.rest('GET', `/api/tasks?${queryString}`, { token: a.member.token }),
      400,
      'BAD_REQUEST',
    );
  });

  it('refuses a cursor made for another sort order (400)', async () => {
    const page = ok(
      await t.rest('GET', `/api/tasks?project=${F}&limit=1&sort=priority`, { token: a.member.token }),
    );
    expect(page.nextCursor).toEqual(expect.any(String));
    expectErrorBody(
      await t.rest('GET', `/api/tasks?project=${F}&limit=1&sort=createdAt&cursor=${page.nextCursor}`, {
        token: a.member.token,
      }),
      400,
      'BAD_REQUEST',
    );
  });
});

describe('tasks.history', () => {
  it('lists every change of a task, oldest first, each with its actor', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    const steps: [string, string, Record<string, unknown>, TestActor][] = [
      ['PATCH', '', { title: 'edited' }, a.creator],
      ['POST', '/start', {}, a.member],
      ['POST', '/progress', { percent: 20, note: 'begun' }, a.member],
      ['POST', '/block', { reason: 'stuck' }, a.member],
      ['POST', '/unblock', {}, a.creator],
      ['POST', '/review', {}, a.member],
      ['POST', '/complete', {}, a.owner],
      ['POST', '/reopen', {}, a.creator],
      ['POST', '/assign', { workerId: a.owner.id }, a.admin],
    ];
    for (const [method, path, body, actor] of steps) {
      ok(await t.rest(method, `/api/tasks/${task.id}${path}`, { token: actor.token, body }));
    }
    const page = ok(await t.rest('GET', `/api/tasks/${task.id}/history`, { token: a.member.token }));
    expect(page.nextCursor).toBeNull();
    const history = page.items;
    expect(history.map((e: { action: string; actorId: string }) => [e.action, e.actorId])).toEqual([
      ['created', a.creator.id],
      ['updated', a.creator.id],
      ['started', a.member.id],
      ['progressed', a.member.id],
      ['blocked', a.member.id],
      ['unblocked', a.creator.id],
      ['submitted', a.member.id],
      ['completed', a.owner.id],
      ['reopened', a.creator.id],
      ['assigned', a.admin.id],
    ]);
    const ids = history.map((e: { id: number }) => e.id);
    expect([...ids].sort((x: number, y: number) => x - y)).toEqual(ids);
    expect(history[3].context).toMatchObject({ percent: 20, note: 'begun' });
    expect(history[4].context).toMatchObject({ reason: 'stuck' });
    expect(history[0]).toMatchObject({
      taskId: task.id,
      projectSlug: P,
      actorType: 'human',
      requestId: expect.any(String),
    });
  });

  it('pages like every list: limit, then the cursor, oldest first, no entry twice or missed', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    for (const percent of [10, 20, 30, 40, 50, 60]) {
      ok(
        await t.rest('POST', `/api/tasks/${task.id}/progress`, {
          token: a.member.token,
          body: { percent },
        }),
      );
    }
    const all = ok(await t.rest('GET', `/api/tasks/${task.id}/history`, { token: a.member.token })).items;
    expect(all).toHaveLength(8);
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `limit=3&cursor=${cursor}` : 'limit=3';
      const page = ok(
        await t.rest('GET', `/api/tasks/${task.id}/history?${query}`, { token: a.member.token }),
      );
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((entry: { id: number }) => entry.id));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(all.map((entry: { id: number }) => entry.id));
    // The same page over tRPC; a list's cursor is refused here.
    const viaTrpc = await t.trpcQuery('tasks.history', { id: task.id, limit: 3 }, a.member.token);
    expect(viaTrpc.body.result.data.items.map((entry: { id: number }) => entry.id)).toEqual(seen.slice(0, 3));
    const listCursor = ok(await t.rest('GET', '/api/tasks?limit=1', { token: a.member.token })).nextCursor;
    expectErrorBody(
      await t.rest('GET', `/api/tasks/${task.id}/history?cursor=${listCursor}`, { token: a.member.token }),
      400,
      'BAD_REQUEST',
    );
  });

  it('is 404 for a task the actor may not see', async () => {
    const task = await makeTask(t, a.creator, { projectSlug: P });
    expectErrorBody(
      await t.rest('GET', `/api/tasks/${task.id}/history`, { token: a.outsider.token }),
      404,
      'NOT_FOUND',
    );
  });
});

describe('atomicity: a failed audit insert undoes the change it records', () => {
  beforeAll(async () => {
    // Test-only sabotage, in this file's own database: the audit insert raises for listed actions.
    await query(t, sql`create table audit_sabotage (action audit_action primary key)`);
    await query(
      t,
      sql.raw(`create function audit_sabotage() returns trigger language plpgsql as $$
        begin
          if exists (select 1 from audit_sabotage where action = new.action) then
            raise exception 'sabotaged audit insert for %', new.action;
          end if;
          return new;
        end $$`),
    );
    await query(
      t,
      sql`create trigger audit_sabotage before insert on audit_log for each row execute function audit_sabotage()`,
    );
  });
  afterEach(async () => {
    await query(t, sql`delete from audit_sabotage`);
  });

  const sabotage = (action: string) =>
    query(t, sql`insert into audit_sabotage values (${action}::audit_action)`);

  const CASES: {
    action: string;
    status: string;
    method: string;
    path: string;
    body: Record<string, unknown>;
    by: 'creator' | 'member' | 'admin';
  }[] = [
    {
      action: 'updated',
      status: 'pending',
      method: 'PATCH',
      path: '',
      body: { title: 'never' },
      by: 'creator',
    },
    { action: 'started', status: 'pending', method: 'POST', path: '/start', body: {}, by: 'member' },
    {
      action: 'progressed',
      status: 'in_progress',
      method: 'POST',
      path: '/progress',
      body: { percent: 90 },
      by: 'member',
    },
    { action: 'submitted', status: 'in_progress', method: 'POST', path: '/review', body: {}, by: 'member' },
    { action: 'completed', status: 'review', method: 'POST', path: '/complete', body: {}, by: 'member' },
    {
      action: 'blocked',
      status: 'in_progress',
      method: 'POST',
      path: '/block',
      body: { reason: 'x' },
      by: 'member',
    },
    { action: 'unblocked', status: 'blocked', method: 'POST', path: '/unblock', body: {}, by: 'member' },
    { action: 'reopened', status: 'completed', method: 'POST', path: '/reopen', body: {}, by: 'creator' },
    {
      action: 'assigned',
      status: 'pending',
      method: 'POST',
      path: '/assign',
      body: { workerId: 'tina' },
      by: 'creator',
    },
    { action: 'deleted', status: 'pending', method: 'DELETE', path: '', body: {}, by: 'creator' },
  ];
  for (const c of CASES) {
    it(`rolls back ${c.method} ${c.path || '/'} when its \`${c.action}\` row cannot be written (500, task unchanged)`, async () => {
      const [id] = await seedTasks(t, [
        {
          status: c.status as 'pending',
          assignedTo: c.status === 'pending' ? null : a.member.id,
          createdBy: a.creator.id,
          projectSlug: P,
        },
      ]);
      const before = await taskRow(t, id as number);
      const mark = await lastAuditId(t);
      await sabotage(c.action);
      const result = await t.rest(c.method, `/api/tasks/${id}${c.path}`, {
        token: a[c.by].token,
        ...(c.method === 'DELETE' ? {} : { body: c.body }),
      });
      expectErrorBody(result, 500, 'INTERNAL_SERVER_ERROR');
      expect(result.body.error).toBe('Internal server error');
      expect(result.raw).not.toContain('sabotage');
      expect(await taskRow(t, id as number)).toEqual(before);
      await expectAuditRows(t, mark, []);
    });
  }

  it('rolls back tasks.create when its `created` row cannot be written: no task appears', async () => {
    const [{ n: before } = { n: 0 }] = await query<{ n: number }>(
      t,
      sql`select count(*)::int as n from tasks`,
    );
    await sabotage('created');
    const result = await t.trpcMutation('tasks.create', { title: 'ghost', projectSlug: P }, a.creator.token);
    expectFailure(result, 'trpc', 500, 'INTERNAL_SERVER_ERROR');
    const [{ n: after } = { n: 0 }] = await query<{ n: number }>(
      t,
      sql`select count(*)::int as n from tasks`,
    );
    expect(after).toBe(before);
    expect(await query(t, sql`select id from tasks where title = 'ghost'`)).toEqual([]);
  });

  it('rolls back projects.create and addMember when their rows cannot be written', async () => {
    await sabotage('project_created');
    expectErrorBody(
      await t.rest('POST', '/api/projects', {
        token: a.creator.token,
        body: { slug: 'ghost-project', name: 'g' },
      }),
      500,
      'INTERNAL_SERVER_ERROR',
    );
    expect(await query(t, sql`select slug from projects where slug = 'ghost-project'`)).toEqual([]);
    expect(await query(t, sql`select 1 from project_members where project_slug = 'ghost-project'`)).toEqual(
      [],
    );
    await sabotage('member_added');
    expectErrorBody(
      await t.rest('PUT', `/api/projects/${P}/members/${a.outsider.id}`, { token: a.owner.token, body: {} }),
      500,
      'INTERNAL_SERVER_ERROR',
    );
    expect(
      await query(
        t,
        sql`select 1 from project_members where project_slug = ${P} and worker_id = ${a.outsider.id}`,
      ),
    ).toEqual([]);
  });
});
