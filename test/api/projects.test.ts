import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp, trpcData } from '../helpers/app.js';
import {
  expectAuditRows,
  expectFailure,
  lastAuditId,
  makeActors,
  makeProject,
  makeTask,
  ok,
  query,
  type TestActor,
} from '../helpers/factories.js';

let t: TestApp;
let a: Record<'owner' | 'coOwner' | 'member' | 'admin' | 'outsider', TestActor>;

beforeAll(async () => {
  t = await createTestApp();
  a = await makeActors(
    t,
    { owner: 'olivia', coOwner: 'cora', member: 'max', admin: 'adm', outsider: 'ozzy' },
    { admin: 'admin' },
  );
});
afterAll(() => t.close());

const members = async (slug: string) =>
  (
    await query<{ worker_id: string; role: string }>(
      t,
      sql`select worker_id, role from project_members where project_slug = ${slug} order by worker_id`,
    )
  ).map((row) => [row.worker_id, row.role]);

describe('projects.create (POST /api/projects → 201)', () => {
  it('creates the project, makes the caller its owner and writes one `project_created` row', async () => {
    const mark = await lastAuditId(t);
    const created = await t.rest('POST', '/api/projects', {
      token: a.owner.token,
      body: { slug: 'website', name: '  Website ', description: ' The site ' },
    });
    expect(created.status, created.raw).toBe(201);
    expect(created.body).toEqual({
      slug: 'website',
      name: 'Website',
      description: 'The site',
      ownerId: a.owner.id,
      createdAt: expect.stringMatching(/Z$/),
    });
    expect(await members('website')).toEqual([[a.owner.id, 'owner']]);
    await expectAuditRows(t, mark, [
      { action: 'project_created', actorId: a.owner.id, projectSlug: 'website', taskId: null },
    ]);
  });

  it('answers the same JSON over tRPC', async () => {
    const viaTrpc = trpcData(
      await t.trpcMutation('projects.create', { slug: 'via-trpc', name: 'T' }, a.owner.token),
    );
    expect(viaTrpc).toMatchObject({ slug: 'via-trpc', name: 'T', description: null, ownerId: a.owner.id });
  });

  it('is 409 for a slug already taken, writing nothing', async () => {
    await makeProject(t, a.owner, 'taken');
    const mark = await lastAuditId(t);
    expectErrorBody(
      await t.rest('POST', '/api/projects', {
        token: a.outsider.token,
        body: { slug: 'taken', name: 'again' },
      }),
      409,
      'CONFLICT',
    );
    expect(await members('taken')).toEqual([[a.owner.id, 'owner']]);
    await expectAuditRows(t, mark, []);
  });

  it.each([
    ['an uppercase slug', { slug: 'Website', name: 'x' }],
    ['a one-character slug', { slug: 'a', name: 'x' }],
    ['a slug starting with a dash', { slug: '-site', name: 'x' }],
    ['a slug over 63 characters', { slug: `a${'b'.repeat(63)}`, name: 'x' }],
    ['a blank name', { slug: 'blank-name', name: '  ' }],
    ['a name over 100 characters', { slug: 'long-name', name: 'n'.repeat(101) }],
    ['a description over 2000 characters', { slug: 'long-desc', name: 'x', description: 'd'.repeat(2001) }],
    ['an unknown field', { slug: 'unknown-field', name: 'x', ownerId: 'someone-else' }],
    ['a missing name', { slug: 'no-name' }],
  ])('refuses %s with 400', async (_what, body) => {
    expectErrorBody(
      await t.rest('POST', '/api/projects', { token: a.owner.token, body }),
      400,
      'BAD_REQUEST',
    );
    expect(await query(t, sql`select slug from projects where slug = ${String(body.slug)}`)).toEqual([]);
  });
});

describe('projects.list and projects.get', () => {
  beforeAll(async () => {
    await makeProject(t, a.owner, 'listed', { members: [a.member], owners: [a.coOwner] });
    await makeProject(t, a.outsider, 'outsiders');
  });

  it('lists the projects the caller belongs to, by slug; an admin sees all', async () => {
    const mine = ok(await t.rest('GET', '/api/projects', { token: a.member.token }));
    expect(mine.map((p: { slug: string }) => p.slug)).toEqual(['listed']);
    const all = ok(await t.rest('GET', '/api/projects', { token: a.admin.token }));
    const slugs = all.map((p: { slug: string }) => p.slug);
    expect(slugs).toEqual(expect.arrayContaining(['listed', 'outsiders', 'website']));
    expect(slugs).toEqual([...slugs].sort());
  });

  it('gets a project with its members, identical on REST and tRPC', async () => {
    const viaRest = await t.rest('GET', '/api/projects/listed', { token: a.member.token });
    const project = ok(viaRest);
    expect(project.members.map((m: { workerId: string; role: string }) => [m.workerId, m.role])).toEqual([
      [a.coOwner.id, 'owner'],
      [a.member.id, 'member'],
      [a.owner.id, 'owner'],
    ]);
    const viaTrpc = await t.trpcQuery('projects.get', { slug: 'listed' }, a.member.token);
    expect(JSON.stringify(trpcData(viaTrpc))).toBe(viaRest.raw);
    const listRest = await t.rest('GET', '/api/projects', { token: a.member.token });
    expect(JSON.stringify(trpcData(await t.trpcQuery('projects.list', {}, a.member.token)))).toBe(
      listRest.raw,
    );
  });

  it('is 404 to a non-member and 200 to an admin', async () => {
    expectErrorBody(
      await t.rest('GET', '/api/projects/listed', { token: a.outsider.token }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(await t.rest('GET', '/api/projects/no-such', { token: a.owner.token }), 404, 'NOT_FOUND');
    ok(await t.rest('GET', '/api/projects/listed', { token: a.admin.token }));
  });

  it('refuses a malformed slug and unknown query parameters with 400', async () => {
    expectErrorBody(
      await t.rest('GET', '/api/projects/NOT_A_SLUG', { token: a.owner.token }),
      400,
      'BAD_REQUEST',
    );
    expectErrorBody(
      await t.rest('GET', '/api/projects?all=true', { token: a.owner.token }),
      400,
      'BAD_REQUEST',
    );
  });
});

describe('projects.update (PATCH /api/projects/{slug})', () => {
  beforeAll(async () => {
    await makeProject(t, a.owner, 'editable', { members: [a.member] });
  });

  it('lets an owner edit, writing one `project_updated` row with before and after', async () => {
    const mark = await lastAuditId(t);
    const updated = ok(
      await t.rest('PATCH', '/api/projects/editable', {
        token: a.owner.token,
        body: { name: 'Edited', description: 'now described' },
      }),
    );
    expect(updated).toMatchObject({ slug: 'editable', name: 'Edited', description: 'now described' });
    await expectAuditRows(t, mark, [
      {
        action: 'project_updated',
        projectSlug: 'editable',
        context: {
          changes: {
            name: { before: 'editable', after: 'Edited' },
            description: { before: null, after: 'now described' },
          },
        },
      },
    ]);
  });

  it('lets an admin edit; a member gets 403 and an outsider 404, changing nothing', async () => {
    ok(await t.rest('PATCH', '/api/projects/editable', { token: a.admin.token, body: { name: 'By admin' } }));
    const mark = await lastAuditId(t);
    for (const surface of ['rest', 'trpc'] as const) {
      const as = (actor: TestActor) =>
        surface === 'rest'
          ? t.rest('PATCH', '/api/projects/editable', { token: actor.token, body: { name: 'no' } })
          : t.trpcMutation('projects.update', { slug: 'editable', name: 'no' }, actor.token);
      expectFailure(await as(a.member), surface, 403, 'FORBIDDEN');
      expectFailure(await as(a.outsider), surface, 404, 'NOT_FOUND');
    }
    expect(ok(await t.rest('GET', '/api/projects/editable', { token: a.owner.token })).name).toBe('By admin');
    await expectAuditRows(t, mark, []);
  });

  it.each([
    ['nothing to change', {}],
    ['the slug (it is the key)', { newSlug: 'other' }],
    ['the owner id', { ownerId: 'max' }],
    ['a blank name', { name: ' ' }],
  ])('refuses %s with 400', async (_what, body) => {
    expectErrorBody(
      await t.rest('PATCH', '/api/projects/editable', { token: a.owner.token, body }),
      400,
      'BAD_REQUEST',
    );
  });
});

describe('members (PUT and DELETE /api/projects/{slug}/members/{workerId})', () => {
  it('adds a member (200, role member by default) and writes one `member_added` row', async () => {
    await makeProject(t, a.owner, 'team');
    const mark = await lastAuditId(t);
    const added = ok(
      await t.rest('PUT', `/api/projects/team/members/${a.member.id}`, { token: a.owner.token, body: {} }),
    );
    expect(added).toEqual({
      projectSlug: 'team',
      workerId: a.member.id,
      role: 'member',
      createdAt: expect.stringMatching(/Z$/),
    });
    await expectAuditRows(t, mark, [
      {
        action: 'member_added',
        projectSlug: 'team',
        context: { workerId: a.member.id, role: 'member', previousRole: null },
      },
    ]);
    // The new member now sees the project's tasks.
    const task = await makeTask(t, a.owner, { projectSlug: 'team' });
    ok(await t.rest('GET', `/api/tasks/${task.id}`, { token: a.member.token }));
  });

  it('changes a role with the same PUT, recording the previous role', async () => {
    await makeProject(t, a.owner, 'promote', { members: [a.member] });
    const mark = await lastAuditId(t);
    const promoted = ok(
      await t.rest('PUT', `/api/projects/promote/members/${a.member.id}`, {
        token: a.owner.token,
        body: { role: 'owner' },
      }),
    );
    expect(promoted.role).toBe('owner');
    await expectAuditRows(t, mark, [
      { action: 'member_added', context: { workerId: a.member.id, role: 'owner', previousRole: 'member' } },
    ]);
    expect(await members('promote')).toEqual([
      [a.member.id, 'owner'],
      [a.owner.id, 'owner'],
    ]);
  });

  it('answers PUT over tRPC with the same member JSON', async () => {
    await makeProject(t, a.owner, 'trpc-team');
    const viaTrpc = trpcData(
      await t.trpcMutation('projects.addMember', { slug: 'trpc-team', workerId: a.member.id }, a.owner.token),
    );
    expect(viaTrpc).toMatchObject({ projectSlug: 'trpc-team', workerId: a.member.id, role: 'member' });
  });

  it('refuses an unknown worker (404), a non-owner (403), a non-member (404) and bad input (400)', async () => {
    await makeProject(t, a.owner, 'guarded', { members: [a.member] });
    const mark = await lastAuditId(t);
    expectErrorBody(
      await t.rest('PUT', '/api/projects/guarded/members/nobody', { token: a.owner.token, body: {} }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('PUT', `/api/projects/guarded/members/${a.outsider.id}`, {
        token: a.member.token,
        body: {},
      }),
      403,
      'FORBIDDEN',
    );
    expectErrorBody(
      await t.rest('PUT', `/api/projects/guarded/members/${a.outsider.id}`, {
        token: a.outsider.token,
        body: {},
      }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('PUT', `/api/projects/guarded/members/${a.outsider.id}`, {
        token: a.owner.token,
        body: { role: 'boss' },
      }),
      400,
      'BAD_REQUEST',
    );
    expectErrorBody(
      await t.rest('PUT', `/api/projects/guarded/members/${a.outsider.id}`, {
        token: a.owner.token,
        body: { extra: 1 },
      }),
      400,
      'BAD_REQUEST',
    );
    expect(await members('guarded')).toEqual([
      [a.member.id, 'member'],
      [a.owner.id, 'owner'],
    ]);
    await expectAuditRows(t, mark, []);
  });

  it('removes a member (204, one `member_removed` row); the former member then gets 404', async () => {
    await makeProject(t, a.owner, 'leaving', { members: [a.member] });
    const task = await makeTask(t, a.owner, { projectSlug: 'leaving' });
    const mark = await lastAuditId(t);
    const removed = await t.rest('DELETE', `/api/projects/leaving/members/${a.member.id}`, {
      token: a.owner.token,
    });
    expect(removed.status, removed.raw).toBe(204);
    expect(removed.raw).toBe('');
    await expectAuditRows(t, mark, [
      {
        action: 'member_removed',
        projectSlug: 'leaving',
        context: { workerId: a.member.id, role: 'member' },
      },
    ]);
    expectErrorBody(
      await t.rest('GET', '/api/projects/leaving', { token: a.member.token }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('GET', `/api/tasks/${task.id}`, { token: a.member.token }),
      404,
      'NOT_FOUND',
    );
    expectErrorBody(
      await t.rest('DELETE', `/api/projects/leaving/members/${a.member.id}`, { token: a.owner.token }),
      404,
      'NOT_FOUND',
    );
  });

  it('keeps at least one owner: removing or demoting the last one is 409', async () => {
    await makeProject(t, a.owner, 'solo', { members: [a.member] });
    const mark = await lastAuditId(t);
    expectErrorBody(
      await t.rest('DELETE', `/api/projects/solo/members/${a.owner.id}`, { token: a.owner.token }),
      409,
      'CONFLICT',
    );
    expectErrorBody(
      await t.rest('PUT', `/api/projects/solo/members/${a.owner.id}`, {
        token: a.owner.token,
        body: { role: 'member' },
      }),
      409,
      'CONFLICT',
    );
    expect(await members('solo')).toEqual([
      [a.member.id, 'member'],
      [a.owner.id, 'owner'],
    ]);
    await expectAuditRows(t, mark, []);
  });

  it('keeps an owner when two owners remove each other at the same moment', async () => {
    await makeProject(t, a.owner, 'duel', { owners: [a.coOwner] });
    const [one, two] = await Promise.all([
      t.rest('DELETE', `/api/projects/duel/members/${a.coOwner.id}`, { token: a.owner.token }),
      t.rest('DELETE', `/api/projects/duel/members/${a.owner.id}`, { token: a.coOwner.token }),
    ]);
    const statuses = [one?.status, two?.status].sort();
    // One removal wins; the other is refused as the last owner (409) or, having lost its own
    // membership first, no longer sees the project (404).
    expect(statuses[0]).toBe(204);
    expect([403, 404, 409]).toContain(statuses[1]);
    const owners = (await members('duel')).filter(([, role]) => role === 'owner');
    expect(owners).toHaveLength(1);
  });

  it('never lets an owner finish a member change after being removed by a concurrent request', async () => {
    for (let round = 0; round < 8; round += 1) {
      const slug = `race-${round}`;
      await makeProject(t, a.owner, slug, { owners: [a.coOwner], members: [a.member] });
      const [ousting, late] = await Promise.all([
        t.rest('DELETE', `/api/projects/${slug}/members/${a.coOwner.id}`, { token: a.owner.token }),
        t.rest('DELETE', `/api/projects/${slug}/members/${a.member.id}`, { token: a.coOwner.token }),
      ]);
      expect(ousting.status, ousting.raw).toBe(204);
      if (late.status !== 204) {
        expectErrorBody(late, late.status, late.status === 403 ? 'FORBIDDEN' : 'NOT_FOUND');
        continue;
      }
      // Both succeeded: then the co-owner's change must have happened while still an owner.
      const rows = await query<{ id: number; actor_id: string }>(
        t,
        sql`select id, actor_id from audit_log where project_slug = ${slug} and action = 'member_removed' order by id`,
      );
      expect(rows.map((row) => row.actor_id)).toEqual([a.coOwner.id, a.owner.id]);
    }
  });

  it('answers update and removeMember over tRPC like REST (the project; null for the removal)', async () => {
    await makeProject(t, a.owner, 'trpc-twin-a', { members: [a.member] });
    await makeProject(t, a.owner, 'trpc-twin-b', { members: [a.member] });
    const viaRest = ok(
      await t.rest('PATCH', '/api/projects/trpc-twin-a', {
        token: a.owner.token,
        body: { description: 'same' },
      }),
    );
    const viaTrpc = trpcData(
      await t.trpcMutation('projects.update', { slug: 'trpc-twin-b', description: 'same' }, a.owner.token),
    );
    expect({ ...viaTrpc, slug: 'x', name: 'x', createdAt: 'T' }).toEqual({
      ...viaRest,
      slug: 'x',
      name: 'x',
      createdAt: 'T',
    });
    const removed = await t.trpcMutation(
      'projects.removeMember',
      { slug: 'trpc-twin-b', workerId: a.member.id },
      a.owner.token,
    );
    expect(removed.status, removed.raw).toBe(200);
    expect(removed.body.result.data ?? null).toBeNull();
    expect(await members('trpc-twin-b')).toEqual([[a.owner.id, 'owner']]);
  });

  it('lets an admin manage members of a project they are not in', async () => {
    await makeProject(t, a.owner, 'admin-managed');
    ok(
      await t.rest('PUT', `/api/projects/admin-managed/members/${a.outsider.id}`, {
        token: a.admin.token,
        body: {},
      }),
    );
    expect(
      (
        await t.rest('DELETE', `/api/projects/admin-managed/members/${a.outsider.id}`, {
          token: a.admin.token,
        })
      ).status,
    ).toBe(204);
  });
});
