import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp, trpcData } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, query, type TestActor } from '../helpers/factories.js';

interface Entry {
  id: number;
  at: string;
  actorId: string;
  actorType: string;
  action: string;
  taskId: number | null;
  projectSlug: string | null;
  context: Record<string, unknown>;
  requestId: string | null;
}

let t: TestApp;
let a: Record<'owner' | 'member' | 'other' | 'admin', TestActor>;
let ledgerTask: number;
let melsLoose: number;
let otisLoose: number;
let startRequestId: string;

beforeAll(async () => {
  t = await createTestApp();
  a = await makeActors(t, { owner: 'uma', member: 'mel', other: 'otis', admin: 'adi' }, { admin: 'admin' });
  await makeProject(t, a.owner, 'ledger', { members: [a.member] });
  await makeProject(t, a.other, 'other-ledger');
  ledgerTask = (await makeTask(t, a.owner, { projectSlug: 'ledger', title: 'ledger task' })).id;
  const started = await t.rest('POST', `/api/tasks/${ledgerTask}/start`, { token: a.member.token, body: {} });
  startRequestId = ok(started) && String(started.headers['x-request-id']);
  ok(
    await t.rest('POST', `/api/tasks/${ledgerTask}/progress`, {
      token: a.member.token,
      body: { percent: 30 },
    }),
  );
  ok(await t.rest('POST', `/api/tasks/${ledgerTask}/complete`, { token: a.owner.token, body: {} }));
  melsLoose = (await makeTask(t, a.member, { title: 'mine alone' })).id;
  otisLoose = (await makeTask(t, a.other, { title: 'his alone' })).id;
  await makeTask(t, a.other, { projectSlug: 'other-ledger' });
});
afterAll(() => t.close());

async function all(actor: TestActor, params = ''): Promise<Entry[]> {
  const page = ok(await t.rest('GET', `/api/audit?limit=100${params}`, { token: actor.token }));
  return page.items;
}

describe('audit.list (GET /api/audit)', () => {
  it('lists entries newest first, each attributed, with the request id of the request that wrote it', async () => {
    const entries = await all(a.member, `&taskId=${ledgerTask}`);
    expect(entries.map((e) => [e.action, e.actorId])).toEqual([
      ['completed', a.owner.id],
      ['progressed', a.member.id],
      ['started', a.member.id],
      ['created', a.owner.id],
    ]);
    const started = entries.find((e) => e.action === 'started');
    expect(started).toEqual({
      id: expect.any(Number),
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      actorId: a.member.id,
      actorType: 'human',
      action: 'started',
      taskId: ledgerTask,
      projectSlug: 'ledger',
      context: { from: 'pending', to: 'in_progress' },
      requestId: startRequestId,
    });
  });

  it('answers identical JSON on REST and tRPC', async () => {
    const viaRest = await t.rest('GET', '/api/audit?project=ledger&action=started&action=completed&limit=5', {
      token: a.member.token,
    });
    const viaTrpc = await t.trpcQuery(
      'audit.list',
      { project: 'ledger', action: ['started', 'completed'], limit: 5 },
      a.member.token,
    );
    expect(JSON.stringify(trpcData(viaTrpc))).toBe(viaRest.raw);
    expect(viaRest.body.items.map((e: Entry) => e.action)).toEqual(['completed', 'started']);
  });

  it('filters by task, project, actor and action (one or several)', async () => {
    expect((await all(a.member, '&project=ledger')).every((e) => e.projectSlug === 'ledger')).toBe(true);
    expect((await all(a.member, '&project=ledger')).map((e) => e.action)).toEqual(
      expect.arrayContaining(['project_created', 'member_added', 'created', 'started', 'completed']),
    );
    const byOwner = await all(a.member, `&actorId=${a.owner.id}`);
    expect(byOwner.length).toBeGreaterThan(0);
    expect(byOwner.every((e) => e.actorId === a.owner.id)).toBe(true);
    expect((await all(a.member, '&action=progressed')).map((e) => e.taskId)).toEqual([ledgerTask]);
    const several = await all(a.member, '&action=started&action=progressed');
    expect(several.map((e) => e.action)).toEqual(['progressed', 'started']);
    expect(await all(a.member, `&taskId=${ledgerTask}&actorId=${a.owner.id}&action=started`)).toEqual([]);
  });

  it('filters by time: since and until are inclusive', async () => {
    const entries = await all(a.member, `&taskId=${ledgerTask}`);
    const progressed = entries.find((e) => e.action === 'progressed') as Entry;
    const since = await all(a.member, `&taskId=${ledgerTask}&since=${encodeURIComponent(progressed.at)}`);
    expect(since.map((e) => e.id)).toEqual(entries.filter((e) => e.at >= progressed.at).map((e) => e.id));
    expect(since.map((e) => e.id)).toContain(progressed.id);
    const until = await all(a.member, `&taskId=${ledgerTask}&until=${encodeURIComponent(progressed.at)}`);
    expect(until.map((e) => e.id)).toEqual(entries.filter((e) => e.at <= progressed.at).map((e) => e.id));
    expect(until.map((e) => e.id)).toContain(progressed.id);
    expect(await all(a.member, '&since=2999-01-01T00:00:00Z')).toEqual([]);
  });

  it('shows a member only the rows of their projects, of their own loose tasks and their own', async () => {
    const entries = await all(a.member);
    for (const entry of entries) {
      const ofLedger = entry.projectSlug === 'ledger';
      const ofMyLooseTask = entry.projectSlug === null && entry.taskId === melsLoose;
      const mine = entry.projectSlug === null && entry.actorId === a.member.id;
      expect(ofLedger || ofMyLooseTask || mine, JSON.stringify(entry)).toBe(true);
    }
    expect(entries.some((e) => e.taskId === melsLoose)).toBe(true);
    expect(entries.some((e) => e.action === 'worker_registered' && e.actorId === a.member.id)).toBe(true);
    expect(entries.some((e) => e.taskId === otisLoose)).toBe(false);
    expect(entries.some((e) => e.projectSlug === 'other-ledger')).toBe(false);
    expect(entries.some((e) => e.action === 'worker_registered' && e.actorId !== a.member.id)).toBe(false);
  });

  it('shows an admin every row', async () => {
    const [{ n } = { n: 0 }] = await query<{ n: number }>(t, sql`select count(*)::int as n from audit_log`);
    expect(n).toBeLessThanOrEqual(100);
    expect(await all(a.admin)).toHaveLength(n);
  });

  it('pages newest first through every visible row exactly once while new rows are appended', async () => {
    const expected = (await all(a.member)).map((e) => e.id);
    const seen: number[] = [];
    let cursor: string | null = null;
    let round = 0;
    do {
      const url: string = `/api/audit?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const page: { items: Entry[]; nextCursor: string | null } = ok(
        await t.rest('GET', url, { token: a.member.token }),
      );
      expect(page.items.length).toBeLessThanOrEqual(3);
      seen.push(...page.items.map((e) => e.id));
      cursor = page.nextCursor;
      // Activity goes on meanwhile: newer rows must not push older ones out of the walk.
      round += 1;
      ok(
        await t.rest('PATCH', `/api/tasks/${melsLoose}`, {
          token: a.member.token,
          body: { title: `edit ${round}` },
        }),
      );
    } while (cursor);
    expect(seen).toEqual(expected);
  });

  it.each([
    ['an unknown parameter', 'verbose=true'],
    ['an unknown action', 'action=exploded'],
    ['limit 0', 'limit=0'],
    ['limit 101', 'limit=101'],
    ['a garbage cursor', 'cursor=%25%25%25'],
    ['a malformed since', 'since=last-week'],
    ['a non-numeric taskId', 'taskId=abc'],
    ['a malformed project slug', 'project=Not_A_Slug'],
  ])('refuses %s with 400', async (_what, params) => {
    expectErrorBody(
      await t.rest('GET', `/api/audit?${params}`, { token: a.member.token }),
      400,
      'BAD_REQUEST',
    );
  });

  it('refuses a cursor of another list (400)', async () => {
    const tasks = ok(await t.rest('GET', '/api/tasks?limit=1', { token: a.member.token }));
    expect(tasks.nextCursor).toEqual(expect.any(String));
    expectErrorBody(
      await t.rest('GET', `/api/audit?cursor=${encodeURIComponent(tasks.nextCursor)}`, {
        token: a.member.token,
      }),
      400,
      'BAD_REQUEST',
    );
  });

  it('is refused without a token (401)', async () => {
    expectErrorBody(await t.rest('GET', '/api/audit'), 401, 'UNAUTHORIZED');
  });
});

describe('the audit log is append-only', () => {
  it('offers no procedure that edits or deletes entries', async () => {
    const [entry] = await all(a.admin);
    for (const method of ['PATCH', 'PUT', 'DELETE']) {
      expectErrorBody(
        await t.rest(method, `/api/audit/${entry?.id}`, { token: a.admin.token, body: {} }),
        404,
        'NOT_FOUND',
      );
    }
  });

  it('is protected by the database itself: UPDATE and DELETE raise', async () => {
    await expect(query(t, sql`update audit_log set actor_id = 'forged'`)).rejects.toThrow();
    await expect(query(t, sql`delete from audit_log`)).rejects.toThrow();
    const [{ n } = { n: 0 }] = await query<{ n: number }>(
      t,
      sql`select count(*)::int as n from audit_log where actor_id = 'forged'`,
    );
    expect(n).toBe(0);
  });
});
