import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appRouter } from '../../server/routers/index.js';
import { createTestApp, type HttpResult, type TestApp } from '../helpers/app.js';
import {
  dataOf,
  expectFailure,
  makeActors,
  makeProject,
  makeTask,
  ok,
  query,
  type TestActor,
} from '../helpers/factories.js';

// A member of project A sees nothing of project B, on any procedure, on either surface.
// Everything of B carries this marker, so any leak shows up in a raw response.
const SECRET = 'bravo-secret';

type Surface = 'rest' | 'trpc';
interface ProcedureDef {
  _def: {
    type: 'query' | 'mutation' | 'subscription';
    meta?: { openapi?: { method: string; path: string } };
  };
}
const PROCEDURES = (appRouter as unknown as { _def: { procedures: Record<string, ProcedureDef> } })._def
  .procedures;

let t: TestApp;
let amy: TestActor; // member of A, the one who looks
let actors: Record<'al' | 'amy' | 'bob' | 'bea', TestActor>;
const b: Record<string, number> = {}; // B's task ids by name
let aTask: number;
let bHook: number; // B's webhook endpoint

/** Calls a procedure on a surface, mapping the input to the REST path, query and body from its meta. */
function call(surface: Surface, procedure: string, input: Record<string, unknown>, actor: TestActor) {
  const def = PROCEDURES[procedure]?._def;
  if (!def) throw new Error(`no procedure ${procedure}`);
  if (surface === 'trpc') {
    return def.type === 'query'
      ? t.trpcQuery(procedure, input, actor.token)
      : t.trpcMutation(procedure, input, actor.token);
  }
  const openapi = def.meta?.openapi;
  if (!openapi) throw new Error(`${procedure} has no REST mirror`);
  const rest = { ...input };
  const path = openapi.path.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = rest[name];
    delete rest[name];
    return encodeURIComponent(String(value));
  });
  if (openapi.method === 'GET' || openapi.method === 'DELETE') {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(rest)) {
      for (const item of Array.isArray(value) ? value : [value]) params.append(name, String(item));
    }
    const search = params.toString();
    return t.rest(openapi.method, `/api${path}${search ? `?${search}` : ''}`, { token: actor.token });
  }
  return t.rest(openapi.method, `/api${path}`, { token: actor.token, body: rest });
}

/** What a probe expects: refused with a status, or answered with data that shows nothing of B. */
type Expectation =
  | { status: 403 | 404 | 409; code: string }
  | { status: 200 | 201; check?: (data: any) => void };

interface Probe {
  what: string;
  input: () => Record<string, unknown>;
  expect: Expectation;
}

const NOT_FOUND = { status: 404, code: 'NOT_FOUND' } as const;
const noItemsOfB = (data: { items: { id: number; projectSlug?: string | null }[] }) => {
  const bIds = new Set(Object.values(b));
  expect(data.items.filter((item) => bIds.has(item.id) || item.projectSlug === 'bravo')).toEqual([]);
};

const noEventsOfB = (data: { items: { taskId: number | null; projectSlug: string | null }[] }) => {
  const bIds = new Set(Object.values(b));
  expect(data.items.filter((item) => bIds.has(item.taskId ?? 0) || item.projectSlug === 'bravo')).toEqual([]);
};

/** Every procedure of the router, each with the ways a member of A might reach into B. */
const PROBES: Record<string, Probe[]> = {
  'tasks.create': [
    { what: 'in project B', input: () => ({ title: 'x', projectSlug: 'bravo' }), expect: NOT_FOUND },
    {
      what: 'under a task of B',
      input: () => ({ title: 'x', projectSlug: 'alpha', parentId: b.open }),
      expect: NOT_FOUND,
    },
    { what: 'under a loose task of B', input: () => ({ title: 'x', parentId: b.loose }), expect: NOT_FOUND },
  ],
  'tasks.list': [
    {
      what: 'unfiltered: A’s tasks only',
      input: () => ({ limit: 100 }),
      expect: {
        status: 200,
        check: (data) => {
          noItemsOfB(data);
          expect(data.items.map((item: { id: number }) => item.id)).toContain(aTask);
        },
      },
    },
    { what: 'project B', input: () => ({ project: 'bravo' }), expect: { status: 200, check: noItemsOfB } },
    {
      what: 'subtasks of a task of B',
      input: () => ({ parentId: b.open }),
      expect: { status: 200, check: noItemsOfB },
    },
    {
      what: 'assigned to a worker of B',
      input: () => ({ assignedTo: 'bob' }),
      expect: { status: 200, check: noItemsOfB },
    },
    {
      what: 'assigned to me (once a member of B)',
      input: () => ({ assignedTo: 'me' }),
      expect: { status: 200, check: noItemsOfB },
    },
    {
      what: 'searching B’s marker',
      input: () => ({ q: SECRET }),
      expect: { status: 200, check: noItemsOfB },
    },
    { what: 'B’s label', input: () => ({ label: SECRET }), expect: { status: 200, check: noItemsOfB } },
  ],
  'tasks.get': [
    { what: 'a task of B', input: () => ({ id: b.open }), expect: NOT_FOUND },
    { what: 'a loose task of B’s owner', input: () => ({ id: b.loose }), expect: NOT_FOUND },
    {
      what: 'a task of B assigned to me (a former member)',
      input: () => ({ id: b.formerlyMine }),
      expect: NOT_FOUND,
    },
  ],
  'tasks.update': [
    { what: 'a task of B', input: () => ({ id: b.open, title: 'mine now' }), expect: NOT_FOUND },
    {
      what: 'a task of B assigned to me',
      input: () => ({ id: b.formerlyMine, title: 'mine now' }),
      expect: NOT_FOUND,
    },
    {
      what: 'a task of A moved under a task of B',
      input: () => ({ id: aTask, parentId: b.open }),
      expect: NOT_FOUND,
    },
  ],
  'tasks.delete': [
    { what: 'a task of B', input: () => ({ id: b.open }), expect: NOT_FOUND },
    { what: 'a loose task of B’s owner', input: () => ({ id: b.loose }), expect: NOT_FOUND },
  ],
  'tasks.start': [{ what: 'a pending task of B', input: () => ({ id: b.open }), expect: NOT_FOUND }],
  'tasks.progress': [
    {
      what: 'a task of B assigned to me',
      input: () => ({ id: b.formerlyMine, percent: 10 }),
      expect: NOT_FOUND,
    },
  ],
  'tasks.submitForReview': [
    { what: 'a task of B assigned to me', input: () => ({ id: b.formerlyMine }), expect: NOT_FOUND },
  ],
  'tasks.complete': [
    { what: 'a task of B assigned to me', input: () => ({ id: b.formerlyMine }), expect: NOT_FOUND },
  ],
  'tasks.block': [
    {
      what: 'a task of B assigned to me',
      input: () => ({ id: b.formerlyMine, reason: 'x' }),
      expect: NOT_FOUND,
    },
  ],
  'tasks.unblock': [{ what: 'a blocked task of B', input: () => ({ id: b.blocked }), expect: NOT_FOUND }],
  'tasks.reopen': [{ what: 'a completed task of B', input: () => ({ id: b.done }), expect: NOT_FOUND }],
  'tasks.claimNext': [
    {
      what: 'the next task of project B',
      input: () => ({ project: 'bravo' }),
      expect: { status: 200, check: (data) => expect(data.task).toBeNull() },
    },
  ],
  'tasks.heartbeat': [
    { what: 'a task of B assigned to me', input: () => ({ id: b.formerlyMine }), expect: NOT_FOUND },
  ],
  'tasks.release': [
    { what: 'a task of B assigned to me', input: () => ({ id: b.formerlyMine }), expect: NOT_FOUND },
  ],
  'tasks.assign': [
    { what: 'a task of B, to me', input: () => ({ id: b.open, workerId: 'amy' }), expect: NOT_FOUND },
    {
      what: 'a task of B, to nobody',
      input: () => ({ id: b.formerlyMine, workerId: null }),
      expect: NOT_FOUND,
    },
  ],
  'tasks.history': [
    { what: 'a task of B', input: () => ({ id: b.open }), expect: NOT_FOUND },
    { what: 'a task of B I once worked on', input: () => ({ id: b.formerlyMine }), expect: NOT_FOUND },
  ],
  'projects.create': [
    // A slug is a global name: that it is taken is all a 409 may say.
    {
      what: 'B’s slug',
      input: () => ({ slug: 'bravo', name: 'mine' }),
      expect: { status: 409, code: 'CONFLICT' },
    },
  ],
  'projects.list': [
    {
      what: 'all: A only',
      input: () => ({}),
      expect: {
        status: 200,
        check: (data) => expect(data.map((p: { slug: string }) => p.slug)).toEqual(['alpha']),
      },
    },
  ],
  'projects.get': [{ what: 'project B', input: () => ({ slug: 'bravo' }), expect: NOT_FOUND }],
  'projects.update': [
    { what: 'project B', input: () => ({ slug: 'bravo', name: 'mine' }), expect: NOT_FOUND },
  ],
  'projects.addMember': [
    { what: 'myself to B', input: () => ({ slug: 'bravo', workerId: 'amy' }), expect: NOT_FOUND },
    {
      what: 'myself to B as owner',
      input: () => ({ slug: 'bravo', workerId: 'amy', role: 'owner' }),
      expect: NOT_FOUND,
    },
  ],
  'projects.removeMember': [
    { what: 'B’s owner from B', input: () => ({ slug: 'bravo', workerId: 'bob' }), expect: NOT_FOUND },
  ],
  // Workers are a global directory and carry no task or audit data.
  'workers.me': [{ what: 'me', input: () => ({}), expect: { status: 200 } }],
  'workers.list': [{ what: 'everyone', input: () => ({}), expect: { status: 200 } }],
  'workers.get': [{ what: 'B’s owner', input: () => ({ id: 'bob' }), expect: { status: 200 } }],
  'events.list': [
    {
      what: 'every event: A’s only',
      input: () => ({ limit: 100 }),
      expect: { status: 200, check: noEventsOfB },
    },
    { what: 'project B', input: () => ({ project: 'bravo' }), expect: { status: 200, check: noEventsOfB } },
    { what: 'a task of B', input: () => ({ taskId: b.open }), expect: { status: 200, check: noEventsOfB } },
  ],
  'workers.update': [
    {
      what: 'B’s owner, given my capabilities',
      input: () => ({ id: 'bob', capabilities: ['deploy'] }),
      expect: { status: 403, code: 'FORBIDDEN' },
    },
  ],
  'workers.register': [
    {
      what: 'an agent (admins only)',
      input: () => ({ id: '@spy', name: 'spy' }),
      expect: { status: 403, code: 'FORBIDDEN' },
    },
  ],
  'audit.list': [
    {
      what: 'unfiltered: A’s rows only',
      input: () => ({ limit: 100 }),
      expect: {
        status: 200,
        check: (data) => {
          expect(data.items.length).toBeGreaterThan(0);
          expect(data.items.filter((row: AuditLike) => isOfB(row))).toEqual([]);
        },
      },
    },
    {
      what: 'project B',
      input: () => ({ project: 'bravo' }),
      expect: { status: 200, check: (data) => expect(data.items).toEqual([]) },
    },
    {
      what: 'a task of B',
      input: () => ({ taskId: b.open }),
      expect: { status: 200, check: (data) => expect(data.items).toEqual([]) },
    },
    {
      what: 'a loose task of B’s owner',
      input: () => ({ taskId: b.loose }),
      expect: { status: 200, check: (data) => expect(data.items).toEqual([]) },
    },
    {
      what: 'B’s owner as actor',
      input: () => ({ actorId: 'bob' }),
      expect: { status: 200, check: (data) => expect(data.items).toEqual([]) },
    },
    {
      what: 'my own actions in B, while I was a member',
      input: () => ({ actorId: 'amy', limit: 100 }),
      expect: {
        status: 200,
        check: (data) => expect(data.items.filter((row: AuditLike) => isOfB(row))).toEqual([]),
      },
    },
  ],
  'health.db': [{ what: 'public readiness', input: () => ({}), expect: { status: 200 } }],
  'webhooks.create': [
    {
      what: 'an endpoint for project B',
      input: () => ({ url: 'https://192.0.2.1/hook', project: 'bravo' }),
      expect: NOT_FOUND,
    },
  ],
  'webhooks.list': [
    {
      what: 'all: none of B',
      input: () => ({}),
      expect: { status: 200, check: (data) => expect(data).toEqual([]) },
    },
    {
      what: 'project B',
      input: () => ({ project: 'bravo' }),
      expect: { status: 200, check: (data) => expect(data).toEqual([]) },
    },
  ],
  'webhooks.get': [{ what: 'B’s endpoint', input: () => ({ id: bHook }), expect: NOT_FOUND }],
  'webhooks.update': [
    { what: 'B’s endpoint, enabled', input: () => ({ id: bHook, enabled: true }), expect: NOT_FOUND },
  ],
  'webhooks.delete': [{ what: 'B’s endpoint', input: () => ({ id: bHook }), expect: NOT_FOUND }],
  'webhooks.rotateSecret': [{ what: 'B’s endpoint', input: () => ({ id: bHook }), expect: NOT_FOUND }],
  'webhooks.test': [{ what: 'B’s endpoint', input: () => ({ id: bHook }), expect: NOT_FOUND }],
  'webhooks.deliveries': [{ what: 'B’s endpoint', input: () => ({ id: bHook }), expect: NOT_FOUND }],
};

interface AuditLike {
  projectSlug: string | null;
  taskId: number | null;
}
const isOfB = (row: AuditLike) => row.projectSlug === 'bravo' || Object.values(b).includes(row.taskId ?? -1);

/** Everything of B as stored: a probe must leave it exactly as it was. */
async function stateOfB(): Promise<unknown> {
  return {
    project: await query(t, sql`select * from projects where slug = 'bravo'`),
    members: await query(
      t,
      sql`select * from project_members where project_slug = 'bravo' order by worker_id`,
    ),
    tasks: await query(
      t,
      sql`select * from tasks where project_slug = 'bravo' or created_by = 'bob' order by id`,
    ),
    audit: await query(t, sql`select count(*)::int as n from audit_log where project_slug = 'bravo'`),
    webhooks: await query(t, sql`select * from webhook_endpoints where project_slug = 'bravo' order by id`),
  };
}

beforeAll(async () => {
  t = await createTestApp();
  actors = await makeActors(t, { al: 'al', amy: 'amy', bob: 'bob', bea: 'bea' });
  amy = actors.amy;
  await makeProject(t, actors.al, 'alpha', { members: [amy] });
  aTask = (await makeTask(t, amy, { projectSlug: 'alpha', title: 'alpha task' })).id;
  await makeProject(t, actors.bob, 'bravo', { members: [actors.bea, amy] });
  ok(await t.rest('PATCH', '/api/projects/bravo', { token: actors.bob.token, body: { name: SECRET } }));
  const mk = async (name: string, body: Record<string, unknown> = {}) => {
    b[name] = (
      await makeTask(t, actors.bob, {
        projectSlug: 'bravo',
        title: `${SECRET} ${name}`,
        labels: [SECRET],
        ...body,
      })
    ).id;
  };
  await mk('open', { description: SECRET });
  await mk('child', { parentId: b.open });
  await mk('blocked');
  ok(
    await t.rest('POST', `/api/tasks/${b.blocked}/block`, {
      token: actors.bob.token,
      body: { reason: SECRET },
    }),
  );
  await mk('done');
  ok(await t.rest('POST', `/api/tasks/${b.done}/start`, { token: actors.bea.token, body: {} }));
  ok(
    await t.rest('POST', `/api/tasks/${b.done}/progress`, {
      token: actors.bea.token,
      body: { percent: 50, note: SECRET },
    }),
  );
  ok(await t.rest('POST', `/api/tasks/${b.done}/complete`, { token: actors.bea.token, body: {} }));
  // Amy worked in B, then left: what she held there is no longer hers to see.
  await mk('formerlyMine');
  ok(await t.rest('POST', `/api/tasks/${b.formerlyMine}/start`, { token: amy.token, body: {} }));
  expect(
    (await t.rest('DELETE', '/api/projects/bravo/members/amy', { token: actors.bob.token })).status,
  ).toBe(204);
  b.loose = (await makeTask(t, actors.bob, { title: `${SECRET} loose` })).id;
  // B's webhook, written as a fixture (disabled: nothing is sent anywhere).
  const [hook] = await query<{ id: number }>(
    t,
    sql`insert into webhook_endpoints (project_slug, url, secret, created_by, enabled, description)
      values ('bravo', ${`https://192.0.2.1/${SECRET}`}, 'whsec_c2VjcmV0c2VjcmV0c2VjcmV0', 'bob', false, ${SECRET})
      returning id`,
  );
  bHook = Number(hook?.id);
});
afterAll(() => t.close());

describe('a member of project A sees nothing of project B', () => {
  it('has a visibility probe for every procedure of the router (add one with each new procedure)', () => {
    // A subscription is a stream, not a call: events.test.ts proves what a non-member receives.
    const called = Object.keys(PROCEDURES).filter((name) => PROCEDURES[name]?._def.type !== 'subscription');
    expect(called).toContain('tasks.claimNext');
    expect(Object.keys(PROBES).sort()).toEqual(called.sort());
    for (const [procedure, probes] of Object.entries(PROBES)) {
      expect(probes.length, procedure).toBeGreaterThan(0);
    }
  });

  for (const surface of ['rest', 'trpc'] as const) {
    describe(surface, () => {
      for (const [procedure, probes] of Object.entries(PROBES)) {
        for (const probe of probes) {
          const expectation = probe.expect;
          const outcome =
            'code' in expectation ? `${expectation.status} ${expectation.code}` : 'nothing of B';
          it(`${procedure} — ${probe.what}: ${outcome}`, async () => {
            const before = await stateOfB();
            const result: HttpResult = await call(surface, procedure, probe.input(), amy);
            if ('code' in expectation) {
              expectFailure(result, surface, expectation.status, expectation.code);
            } else {
              expectation.check?.(dataOf(result, surface, expectation.status));
              if (surface === 'rest') expect(result.status, result.raw).toBe(expectation.status);
            }
            expect(result.raw).not.toContain(SECRET);
            expect(await stateOfB()).toEqual(before);
          });
        }
      }
    });
  }

  it('lets B’s members see what A’s member may not (the probes aim at real rows)', async () => {
    for (const id of Object.values(b)) {
      const owner = id === b.loose ? actors.bob : actors.bea;
      expect(ok(await t.rest('GET', `/api/tasks/${id}`, { token: owner.token })).title).toContain(SECRET);
    }
    const audit = ok(await t.rest('GET', '/api/audit?project=bravo&limit=100', { token: actors.bea.token }));
    expect(audit.items.length).toBeGreaterThan(5);
  });
});
