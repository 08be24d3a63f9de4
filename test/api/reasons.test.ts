import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_REASON_NAMES } from '../../shared/errors.js';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';
import {
  auditRows,
  expectFailure,
  makeActors,
  makeProject,
  makeTask,
  ok,
  query,
  type TestActor,
} from '../helpers/factories.js';

let t: TestApp;
let a: Record<'owner' | 'member' | 'admin', TestActor>;
let replica: string;
beforeAll(async () => {
  t = await createTestApp();
  a = await makeActors(
    t,
    { owner: 'reason-owner', member: 'reason-member', admin: 'reason-admin' },
    { admin: 'admin' },
  );
  ok(
    await t.rest('POST', '/api/workers', { token: a.admin.token, body: { id: '@twin', name: 'Twin' } }),
    201,
  );
  replica = await t.token('@twin');
  await makeProject(t, a.owner, 'reasons', {
    members: [a.member, { id: '@twin', role: 'user', token: replica }],
  });
});
afterAll(() => t.close());

const post = (actor: TestActor | string, path: string, body?: unknown) =>
  t.rest('POST', path, { token: typeof actor === 'string' ? actor : actor.token, body });

describe('machine-readable reasons on refusals', () => {
  it('names the reason in the REST body, in tRPC error.data and in the OpenAPI enum', async () => {
    const task = await makeTask(t, a.owner, { projectSlug: 'reasons' });
    ok(await post(a.member, `/api/tasks/${task.id}/start`));

    const claimed = await post(a.owner, `/api/tasks/${task.id}/start`);
    expectFailure(claimed, 'rest', 409, 'CONFLICT', 'ALREADY_CLAIMED');
    const viaTrpc = await t.trpcMutation('tasks.start', { id: task.id }, a.owner.token);
    expectFailure(viaTrpc, 'trpc', 409, 'CONFLICT', 'ALREADY_CLAIMED');

    const held = await post(a.member, `/api/tasks/${task.id}/start`);
    expectFailure(held, 'rest', 409, 'CONFLICT', 'ALREADY_HELD');

    const notHolder = await post(a.owner, `/api/tasks/${task.id}/progress`, { percent: 10 });
    expectFailure(notHolder, 'rest', 403, 'FORBIDDEN', 'NOT_ASSIGNEE');

    const illegal = await post(a.member, `/api/tasks/${task.id}/reopen`);
    expectFailure(illegal, 'rest', 409, 'CONFLICT', 'ILLEGAL_TRANSITION');

    const stale = await t.rest('PATCH', `/api/tasks/${task.id}`, {
      token: a.owner.token,
      body: { title: 'renamed', expectedVersion: 1 },
    });
    expectFailure(stale, 'rest', 409, 'CONFLICT', 'VERSION_MISMATCH');

    await makeTask(t, a.owner, { projectSlug: 'reasons', parentId: task.id });
    const open = await post(a.member, `/api/tasks/${task.id}/complete`);
    expectFailure(open, 'rest', 409, 'CONFLICT', 'OPEN_SUBTASKS');
    const parent = await t.rest('DELETE', `/api/tasks/${task.id}`, { token: a.owner.token });
    expectFailure(parent, 'rest', 409, 'CONFLICT', 'HAS_SUBTASKS');

    const headers = { 'idempotency-key': 'reason-key' };
    ok(await t.rest('POST', '/api/tasks', { token: a.owner.token, body: { title: 'one' }, headers }), 201);
    const reused = await t.rest('POST', '/api/tasks', {
      token: a.owner.token,
      body: { title: 'another' },
      headers,
    });
    expectFailure(reused, 'rest', 422, 'UNPROCESSABLE_CONTENT', 'IDEMPOTENCY_KEY_REUSED');

    // Plain validation has no reason: the issues say what is wrong.
    const bad = await post(a.owner, '/api/tasks', { title: '' });
    expectErrorBody(bad, 400, 'BAD_REQUEST');
    expect(bad.body).not.toHaveProperty('reason');

    const document = ok(await t.rest('GET', '/openapi.json'));
    expect(document.components.schemas.ErrorReason.enum).toEqual(ERROR_REASON_NAMES);
    expect(document.components.schemas.ConflictError.properties.reason).toEqual({
      $ref: '#/components/schemas/ErrorReason',
    });
  });

  it('gives each of 200 tasks to exactly one of two replicas of one agent identity; the other gets ALREADY_HELD', async () => {
    const ids = (
      await query<{ id: number }>(
        t,
        sql`insert into tasks (title, created_by, project_slug)
            select 'twin ' || n, ${a.owner.id}, 'reasons' from generate_series(1, 200) n returning id`,
      )
    ).map((row) => Number(row.id));
    const wins = new Map<number, number>();
    const refusals: string[] = [];
    // Both replicas race for every task, ten tasks at a time.
    for (let i = 0; i < ids.length; i += 10) {
      const batch = ids.slice(i, i + 10);
      const answers = await Promise.all(
        batch.flatMap((id) =>
          [0, 1].map(async () => [id, await post(replica, `/api/tasks/${id}/start`)] as const),
        ),
      );
      for (const [id, answer] of answers) {
        if (answer.status === 200) wins.set(id, (wins.get(id) ?? 0) + 1);
        else refusals.push(`${answer.status} ${answer.body.reason}`);
      }
    }
    expect([...wins.values()].filter((count) => count > 1)).toEqual([]);
    expect(wins.size).toBe(200);
    expect(new Set(refusals)).toEqual(new Set(['409 ALREADY_HELD']));
    expect(refusals).toHaveLength(200);
    const started = await query<{ n: number }>(
      t,
      sql`select count(*)::int as n from audit_log where action = 'started' and task_id in (select id from tasks where title like 'twin %')`,
    );
    expect(started[0]?.n).toBe(200);
    expect((await auditRows(t, { taskId: ids[0] as number })).map((row) => row.action)).toEqual(['started']);
  }, 90_000);
});
