import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sweepExpiredLeases } from '../../server/services/tasks/leases.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  auditRows,
  expectFailure,
  makeActor,
  makeProject,
  ok,
  query,
  type TestActor,
  taskRow,
} from '../helpers/factories.js';

let t: TestApp;
let owner: TestActor;
let admin: TestActor;

/** Registers agents (with capabilities) and makes them members of `project`. */
async function agents(project: string, specs: [string, string[]][]): Promise<TestActor[]> {
  const made = await Promise.all(
    specs.map(async ([id, capabilities]) => {
      ok(
        await t.rest('POST', '/api/workers', { token: admin.token, body: { id, name: id, capabilities } }),
        201,
      );
      ok(
        await t.rest('PUT', `/api/projects/${project}/members/${encodeURIComponent(id)}`, {
          token: owner.token,
          body: { role: 'member' },
        }),
      );
      return { id, role: 'user' as const, token: await t.token(id) };
    }),
  );
  return made;
}

const task = (body: Record<string, unknown>) =>
  t
    .rest('POST', '/api/tasks', { token: owner.token, body: { title: 'queued', ...body } })
    .then((r) => ok(r, 201));

const claimNext = (actor: TestActor, body: Record<string, unknown> = {}) =>
  t.rest('POST', '/api/tasks/claim-next', { token: actor.token, body });

/** Moves a lease into the past behind the API's back: the clock of these tests. */
const expireLease = (id: number) =>
  query(t, sql`update tasks set lease_expires_at = now() - interval '1 second' where id = ${id}`);

beforeAll(async () => {
  t = await createTestApp();
  owner = await makeActor(t, 'queue-owner');
  admin = await makeActor(t, 'queue-admin', { role: 'admin' });
});
afterAll(() => t.close());

describe('claimNext', () => {
  it('hands out by priority, then due date (none last), then age, within the filters, and null when none is left', async () => {
    await makeProject(t, owner, 'order');
    const [bot] = await agents('order', [['@order-bot', []]]);
    if (!bot) throw new Error('no agent');
    const low = await task({ projectSlug: 'order', priority: 'low' });
    const highLate = await task({ projectSlug: 'order', priority: 'high', dueDate: '2030-01-02T00:00:00Z' });
    const highNone = await task({ projectSlug: 'order', priority: 'high' });
    const highSoon = await task({ projectSlug: 'order', priority: 'high', dueDate: '2030-01-01T00:00:00Z' });
    const critical = await task({ projectSlug: 'order', priority: 'critical', labels: ['docs'] });
    const highNone2 = await task({ projectSlug: 'order', priority: 'high' });

    expect(ok(await claimNext(bot, { project: 'order', labels: ['nope'] }))).toEqual({ task: null });
    const order: number[] = [];
    for (;;) {
      const { task: next } = ok(await claimNext(bot, { project: 'order', minPriority: 'high' }));
      if (!next) break;
      expect(next).toMatchObject({ status: 'in_progress', assignedTo: '@order-bot' });
      order.push(next.id);
    }
    expect(order).toEqual([critical.id, highSoon.id, highLate.id, highNone.id, highNone2.id]);
    const { task: last } = ok(await claimNext(bot, { project: 'order' }));
    expect(last.id).toBe(low.id);
    const started = await auditRows(t, { taskId: low.id });
    expect(started.at(-1)).toMatchObject({
      action: 'started',
      actorId: '@order-bot',
      context: { from: 'pending', to: 'in_progress', via: 'claimNext' },
    });
    // Over tRPC the answer is the same shape.
    const viaTrpc = await t.trpcMutation('tasks.claimNext', { project: 'order' }, bot.token);
    expect(viaTrpc.body.result.data).toEqual({ task: null });
  });

  it('hands an agent only tasks whose required capabilities it has, and workers.update changes them', async () => {
    await makeProject(t, owner, 'skills');
    const [py, plain] = await agents('skills', [
      ['@py', ['python', 'sql']],
      ['@plain', []],
    ]);
    if (!py || !plain) throw new Error('no agents');
    const needsPy = await task({
      projectSlug: 'skills',
      priority: 'critical',
      requiredCapabilities: ['python'],
    });
    const needsBoth = await task({ projectSlug: 'skills', requiredCapabilities: ['python', 'go'] });
    const anyone = await task({ projectSlug: 'skills', priority: 'low' });
    expect(needsPy).toMatchObject({ requiredCapabilities: ['python'], leaseExpiresAt: null });

    expect(ok(await claimNext(plain, { project: 'skills' })).task.id).toBe(anyone.id);
    expect(ok(await claimNext(plain, { project: 'skills' }))).toEqual({ task: null });
    expect(ok(await claimNext(py, { project: 'skills' })).task.id).toBe(needsPy.id);
    expect(ok(await claimNext(py, { project: 'skills' }))).toEqual({ task: null });

    const refused = await t.rest('PATCH', '/api/workers/@py', {
      token: owner.token,
      body: { capabilities: ['go'] },
    });
    expectFailure(refused, 'rest', 403, 'FORBIDDEN');
    const updated = ok(
      await t.rest('PATCH', '/api/workers/@py', {
        token: admin.token,
        body: { capabilities: ['python', 'go'] },
      }),
    );
    expect(updated.capabilities).toEqual(['python', 'go']);
    expect(ok(await claimNext(py, { project: 'skills' })).task.id).toBe(needsBoth.id);
    // Explicit start is not restricted by capabilities.
    const other = await task({ projectSlug: 'skills', requiredCapabilities: ['rust'] });
    ok(await t.rest('POST', `/api/tasks/${other.id}/start`, { token: plain.token }));
  });

  it('never hands out a subtask whose parent is blocked', async () => {
    await makeProject(t, owner, 'tree');
    const [bot] = await agents('tree', [['@tree-bot', []]]);
    if (!bot) throw new Error('no agent');
    const parent = await task({ projectSlug: 'tree', priority: 'low' });
    await task({ projectSlug: 'tree', parentId: parent.id, priority: 'critical' });
    ok(
      await t.rest('POST', `/api/tasks/${parent.id}/block`, { token: owner.token, body: { reason: 'wait' } }),
    );
    expect(ok(await claimNext(bot, { project: 'tree' }))).toEqual({ task: null });
    ok(await t.rest('POST', `/api/tasks/${parent.id}/unblock`, { token: owner.token }));
    expect(ok(await claimNext(bot, { project: 'tree' })).task.parentId).toBe(parent.id);
  });

  it('gives 40 tasks to 40 of 64 concurrent agents, null to the other 24, with no error and one started row each', async () => {
    await makeProject(t, owner, 'race');
    const racers = await agents(
      'race',
      Array.from({ length: 64 }, (_, i) => [`@racer-${i}`, []] as [string, string[]]),
    );
    const ids = (
      await query<{ id: number }>(
        t,
        sql`insert into tasks (title, created_by, project_slug)
            select 'race ' || n, ${owner.id}, 'race' from generate_series(1, 40) n returning id`,
      )
    ).map((row) => Number(row.id));
    const answers = await Promise.all(racers.map((racer) => claimNext(racer, { project: 'race' })));
    expect(answers.filter((answer) => answer.status !== 200).map((answer) => answer.raw)).toEqual([]);
    const won = answers.map((answer) => answer.body.task).filter(Boolean);
    expect(won).toHaveLength(40);
    expect(new Set(won.map((w: { id: number }) => w.id))).toEqual(new Set(ids));
    expect(answers.filter((answer) => answer.body.task === null)).toHaveLength(24);
    for (const w of won) expect(racers.map((r) => r.id)).toContain(w.assignedTo);
    const started = await query<{ task_id: number; n: number }>(
      t,
      sql`select task_id, count(*)::int as n from audit_log where action = 'started' and project_slug = 'race' group by task_id`,
    );
    expect(started).toHaveLength(40);
    expect(started.every((row) => row.n === 1)).toBe(true);
  }, 90_000);
});

describe('leases', () => {
  let bot: TestActor;
  let rival: TestActor;
  beforeAll(async () => {
    await makeProject(t, owner, 'leases');
    [bot, rival] = (await agents('leases', [
      ['@lease-bot', []],
      ['@lease-rival', []],
    ])) as [TestActor, TestActor];
  });

  it('gives an agent’s claim the default lease and a person’s none unless asked, and heartbeat and progress extend it', async () => {
    const a = await task({ projectSlug: 'leases' });
    const claimed = ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    const lease = new Date(claimed.leaseExpiresAt).getTime() - Date.now();
    expect(lease).toBeGreaterThan(590_000);
    expect(lease).toBeLessThanOrEqual(600_000);

    const mine = await task({ projectSlug: 'leases' });
    expect(
      ok(await t.rest('POST', `/api/tasks/${mine.id}/start`, { token: owner.token })).leaseExpiresAt,
    ).toBeNull();
    const timed = await task({ projectSlug: 'leases' });
    const withLease = ok(
      await t.rest('POST', `/api/tasks/${timed.id}/start`, {
        token: owner.token,
        body: { leaseSeconds: 30 },
      }),
    );
    expect(new Date(withLease.leaseExpiresAt).getTime() - Date.now()).toBeLessThanOrEqual(30_000);

    const queued = await task({ projectSlug: 'leases' });
    const short = ok(await claimNext(bot, { project: 'leases', leaseSeconds: 20 })).task;
    expect(short.id).toBe(queued.id);
    expect(new Date(short.leaseExpiresAt).getTime() - Date.now()).toBeLessThanOrEqual(20_000);
    await query(
      t,
      sql`update tasks set lease_expires_at = now() + interval '2 seconds' where id = ${short.id}`,
    );
    const beat = ok(await t.rest('POST', `/api/tasks/${short.id}/heartbeat`, { token: bot.token }));
    expect(new Date(beat.leaseExpiresAt).getTime() - Date.now()).toBeGreaterThan(15_000);
    const longer = ok(
      await t.rest('POST', `/api/tasks/${short.id}/heartbeat`, {
        token: bot.token,
        body: { leaseSeconds: 120 },
      }),
    );
    expect(new Date(longer.leaseExpiresAt).getTime() - Date.now()).toBeGreaterThan(100_000);
    await query(
      t,
      sql`update tasks set lease_expires_at = now() + interval '2 seconds' where id = ${short.id}`,
    );
    const progressed = ok(
      await t.rest('POST', `/api/tasks/${short.id}/progress`, { token: bot.token, body: { percent: 30 } }),
    );
    // Progress renews by the claim's own length, which the heartbeat set to 120 s.
    expect(new Date(progressed.leaseExpiresAt).getTime() - Date.now()).toBeGreaterThan(100_000);
    expect((await auditRows(t, { taskId: short.id })).map((row) => row.action)).toEqual([
      'created',
      'started',
      'progressed',
    ]);
    const notHolder = await t.rest('POST', `/api/tasks/${short.id}/heartbeat`, { token: rival.token });
    expectFailure(notHolder, 'rest', 403, 'FORBIDDEN', 'NOT_ASSIGNEE');
    const done = ok(await t.rest('POST', `/api/tasks/${short.id}/complete`, { token: bot.token }));
    expect(done).toMatchObject({ status: 'completed', leaseExpiresAt: null });
  });

  it('refuses an expired holder with LEASE_EXPIRED before and after the sweep, lets another agent claim, and audits one lease_expired', async () => {
    const a = await task({ projectSlug: 'leases', priority: 'critical', title: 'lapses' });
    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    ok(await t.rest('POST', `/api/tasks/${a.id}/progress`, { token: bot.token, body: { percent: 40 } }));
    await expireLease(a.id);

    for (const [path, body] of [
      ['progress', { percent: 50 }],
      ['heartbeat', {}],
      ['complete', {}],
    ] as const) {
      const refused = await t.rest('POST', `/api/tasks/${a.id}/${path}`, { token: bot.token, body });
      expectFailure(refused, 'rest', 409, 'CONFLICT', 'LEASE_EXPIRED');
    }
    // Two more sweepers at once besides the app's own: one of the three returns the task, none
    // waits for another, and one row says so.
    const swept = await Promise.all([
      sweepExpiredLeases(t.db.database.db),
      sweepExpiredLeases(t.db.database.db),
    ]);
    expect(swept.reduce((sum, n) => sum + n, 0)).toBeLessThanOrEqual(1);
    expect(await taskRow(t, a.id)).toMatchObject({
      status: 'pending',
      assigned_to: null,
      lease_expires_at: null,
      progress_percent: 40,
    });
    const lapses = (await auditRows(t, { taskId: a.id })).filter((row) => row.action === 'lease_expired');
    expect(lapses).toHaveLength(1);
    expect(lapses[0]).toMatchObject({
      actorId: 'system',
      context: { assignee: '@lease-bot', from: 'in_progress' },
    });
    const [actorType] = await query<{ actor_type: string }>(
      t,
      sql`select actor_type from audit_log where id = ${lapses[0]?.id}`,
    );
    expect(actorType?.actor_type).toBe('system');

    const after = await t.rest('POST', `/api/tasks/${a.id}/progress`, {
      token: bot.token,
      body: { percent: 60 },
    });
    expectFailure(after, 'rest', 409, 'CONFLICT', 'LEASE_EXPIRED');
    const retaken = ok(await claimNext(rival, { project: 'leases' })).task;
    expect(retaken).toMatchObject({ id: a.id, assignedTo: '@lease-rival', progressPercent: 40 });
    const stillLost = await t.rest('POST', `/api/tasks/${a.id}/heartbeat`, { token: bot.token });
    expectFailure(stillLost, 'rest', 409, 'CONFLICT', 'LEASE_EXPIRED');
  });

  it('takes a task whose lease passed on the next claim, before any sweeper, auditing the lapse once', async () => {
    const a = await task({ projectSlug: 'leases', priority: 'critical', title: 'lapses then claimed' });
    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    await expireLease(a.id);
    const retaken = ok(await claimNext(rival, { project: 'leases' })).task;
    expect(retaken).toMatchObject({ id: a.id, assignedTo: '@lease-rival' });
    expect((await auditRows(t, { taskId: a.id })).map((row) => [row.action, row.actorId])).toEqual([
      ['created', owner.id],
      ['started', '@lease-bot'],
      ['lease_expired', 'system'],
      ['started', '@lease-rival'],
    ]);
    ok(await t.rest('POST', `/api/tasks/${a.id}/release`, { token: rival.token }));
  });

  it('sweeps a lapsed lease back to pending within 5 seconds on the running server', async () => {
    const a = await task({ projectSlug: 'leases', title: 'swept by the app' });
    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    await expireLease(a.id);
    const deadline = Date.now() + 5_000;
    let status = 'in_progress';
    while (status !== 'pending' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      status = String((await taskRow(t, a.id))?.status);
    }
    expect(status).toBe('pending');
  });

  it('releases: by the holder with a reason, by a project owner, and through assign null on a task in progress', async () => {
    const a = await task({ projectSlug: 'leases', title: 'released' });
    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    const refused = await t.rest('POST', `/api/tasks/${a.id}/release`, { token: rival.token });
    expectFailure(refused, 'rest', 403, 'FORBIDDEN');
    const released = ok(
      await t.rest('POST', `/api/tasks/${a.id}/release`, { token: bot.token, body: { reason: 'exit 1' } }),
    );
    expect(released).toMatchObject({ status: 'pending', assignedTo: null, leaseExpiresAt: null });
    expect((await auditRows(t, { taskId: a.id })).at(-1)).toMatchObject({
      action: 'released',
      actorId: '@lease-bot',
      context: { from: 'in_progress', to: 'pending', assignee: '@lease-bot', reason: 'exit 1' },
    });

    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: rival.token }));
    const byOwner = ok(await t.rest('POST', `/api/tasks/${a.id}/release`, { token: owner.token }));
    expect(byOwner).toMatchObject({ status: 'pending', assignedTo: null });

    ok(await t.rest('POST', `/api/tasks/${a.id}/start`, { token: bot.token }));
    const unassigned = ok(
      await t.rest('POST', `/api/tasks/${a.id}/assign`, { token: owner.token, body: { workerId: null } }),
    );
    expect(unassigned).toMatchObject({ status: 'pending', assignedTo: null, leaseExpiresAt: null });
    expect((await auditRows(t, { taskId: a.id })).at(-1)).toMatchObject({
      action: 'released',
      actorId: owner.id,
      context: { assignee: '@lease-bot' },
    });
  });
});
