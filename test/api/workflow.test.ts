import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type HttpResult, type TestApp } from '../helpers/app.js';
import {
  auditRows,
  dataOf,
  expectFailure,
  makeActors,
  makeProject,
  query,
  seedTasks,
  type TestActor,
  taskRow,
} from '../helpers/factories.js';

// The workflow, written out here independently of shared/workflow.ts so that the test is an oracle for it.
type Status = 'pending' | 'in_progress' | 'review' | 'completed' | 'blocked';
type Action = 'start' | 'progress' | 'submitForReview' | 'complete' | 'block' | 'unblock' | 'reopen';
type Kind = 'assignee' | 'creator' | 'projectOwner' | 'member' | 'admin' | 'outsider';
type Surface = 'rest' | 'trpc';

const STATUSES: Status[] = ['pending', 'in_progress', 'review', 'completed', 'blocked'];
const ACTIONS: Action[] = ['start', 'progress', 'submitForReview', 'complete', 'block', 'unblock', 'reopen'];
const KINDS: Kind[] = ['assignee', 'creator', 'projectOwner', 'member', 'admin', 'outsider'];

/** For a task held by the assignee: `start` is theirs alone (nobody claims a task somebody else holds). */
const TABLE: Record<Action, { from: Status[]; who: Kind[]; audit: string }> = {
  start: { from: ['pending'], who: ['assignee'], audit: 'started' },
  progress: { from: ['in_progress'], who: ['assignee', 'admin'], audit: 'progressed' },
  submitForReview: { from: ['in_progress'], who: ['assignee', 'admin'], audit: 'submitted' },
  complete: {
    from: ['in_progress', 'review'],
    who: ['assignee', 'projectOwner', 'admin'],
    audit: 'completed',
  },
  block: {
    from: ['pending', 'in_progress', 'review'],
    who: ['assignee', 'creator', 'admin'],
    audit: 'blocked',
  },
  unblock: { from: ['blocked'], who: ['assignee', 'creator', 'admin'], audit: 'unblocked' },
  reopen: { from: ['completed'], who: ['creator', 'projectOwner', 'admin'], audit: 'reopened' },
};

const PATH: Record<Action, string> = {
  start: 'start',
  progress: 'progress',
  submitForReview: 'review',
  complete: 'complete',
  block: 'block',
  unblock: 'unblock',
  reopen: 'reopen',
};

const PAYLOAD: Record<Action, Record<string, unknown>> = {
  start: {},
  progress: { percent: 55, note: 'halfway there' },
  submitForReview: {},
  complete: {},
  block: { reason: 'waiting for the API key' },
  unblock: {},
  reopen: {},
};

const SEED_PROGRESS: Record<Status, number> = {
  pending: 0,
  in_progress: 30,
  review: 80,
  completed: 100,
  blocked: 30,
};

function legalFor(status: Status, kind: Kind, assigned = true): Action[] {
  return ACTIONS.filter(
    (action) =>
      TABLE[action].from.includes(status) &&
      (TABLE[action].who.includes(kind) || (action === 'start' && !assigned && kind !== 'outsider')),
  );
}

type Outcome = { kind: 'ok' } | { kind: 'illegal'; legal: Action[] } | { kind: 'forbidden' | 'hidden' };

function expectedOutcome(action: Action, status: Status, kind: Kind, assigned = true): Outcome {
  if (kind === 'outsider') return { kind: 'hidden' };
  if (!TABLE[action].from.includes(status))
    return { kind: 'illegal', legal: legalFor(status, kind, assigned) };
  const allowed = TABLE[action].who.includes(kind) || (action === 'start' && !assigned);
  return allowed ? { kind: 'ok' } : { kind: 'forbidden' };
}

const describeOutcome = (o: Outcome) =>
  o.kind === 'ok'
    ? '200'
    : o.kind === 'illegal'
      ? `409 naming ${o.legal.length ? o.legal.join(', ') : 'no legal action'}`
      : o.kind === 'forbidden'
        ? '403'
        : '404';

let t: TestApp;
let actors: Record<Kind, TestActor>;
/** The seeded rows, as stored before any case ran. */
const snapshot = new Map<number, Record<string, unknown>>();
const PROJECT = 'workflow';

function perform(surface: Surface, action: Action, id: number, actor: TestActor): Promise<HttpResult> {
  return surface === 'rest'
    ? t.rest('POST', `/api/tasks/${id}/${PATH[action]}`, { token: actor.token, body: PAYLOAD[action] })
    : t.trpcMutation(`tasks.${action}`, { id, ...PAYLOAD[action] }, actor.token);
}

interface Case {
  surface: Surface;
  action: Action;
  status: Status;
  kind: Kind;
  assigned: boolean;
  outcome: Outcome;
  id: number;
}

/**
 * REST runs the whole matrix. tRPC calls the same procedures, so it runs the part that exercises
 * every outcome its error mapping must carry: the assignee from every status (every 200 and 409),
 * and every kind of actor from each action's first legal status (every 403 and 404).
 */
function onTrpcToo(action: Action, status: Status, kind: Kind): boolean {
  return kind === 'assignee' || status === TABLE[action].from[0];
}

const cases: Case[] = [];
for (const surface of ['rest', 'trpc'] as const) {
  for (const action of ACTIONS) {
    for (const status of STATUSES) {
      for (const kind of KINDS) {
        if (surface === 'trpc' && !onTrpcToo(action, status, kind)) continue;
        cases.push({
          surface,
          action,
          status,
          kind,
          assigned: true,
          outcome: expectedOutcome(action, status, kind),
          id: 0,
        });
      }
    }
    // Tasks nobody holds: anyone who sees a pending one may claim it; unblocking one returns it to pending.
    for (const status of ['pending', 'blocked'] as const) {
      for (const kind of KINDS.filter((k) => k !== 'assignee')) {
        if (surface === 'trpc' && status !== TABLE[action].from[0]) continue;
        cases.push({
          surface,
          action,
          status,
          kind,
          assigned: false,
          outcome: expectedOutcome(action, status, kind, false),
          id: 0,
        });
      }
    }
  }
}

beforeAll(async () => {
  t = await createTestApp();
  actors = await makeActors(
    t,
    {
      assignee: 'anna',
      creator: 'carl',
      projectOwner: 'olga',
      member: 'mike',
      admin: 'root',
      outsider: 'otto',
    },
    { admin: 'admin' },
  );
  await makeProject(t, actors.projectOwner, PROJECT, {
    members: [actors.assignee, actors.creator, actors.member],
  });
  await makeProject(t, actors.outsider, 'elsewhere');
  // Owning some other project must not make anyone an owner of this one.
  await makeProject(t, actors.member, 'members-own');
  await makeProject(t, actors.assignee, 'assignees-own');
  await makeProject(t, actors.creator, 'creators-own');
  // One task per case, in its state, in one statement: the matrix tests the transitions, not set-up.
  const ids = await seedTasks(
    t,
    cases.map((c) => ({
      title: `${c.surface} ${c.action} ${c.status} ${c.kind}`,
      status: c.status,
      assignedTo: c.assigned ? actors.assignee.id : null,
      createdBy: actors.creator.id,
      projectSlug: PROJECT,
      progressPercent: SEED_PROGRESS[c.status],
    })),
  );
  ids.forEach((id, index) => {
    const c = cases[index];
    if (c) c.id = id;
  });
  for (const row of await query(
    t,
    sql`select * from tasks where id between ${Math.min(...ids)} and ${Math.max(...ids)}`,
  )) {
    snapshot.set(Number(row.id), row);
  }
});
afterAll(() => t.close());

describe('workflow: every action from every status by every kind of actor', () => {
  for (const surface of ['rest', 'trpc'] as const) {
    describe(surface, () => {
      for (const c of cases.filter((x) => x.surface === surface)) {
        const held = c.assigned ? 'held by the assignee' : 'nobody holds';
        it(`${c.kind} → ${c.action} on a ${c.status} task ${held}: ${describeOutcome(c.outcome)}`, async () => {
          const before = snapshot.get(c.id);
          const result = await perform(surface, c.action, c.id, actors[c.kind]);
          const [after] = await query(t, sql`select * from tasks where id = ${c.id}`);
          const audit = await auditRows(t, { taskId: c.id });
          const outcome = c.outcome;
          if (outcome.kind !== 'ok') {
            if (outcome.kind === 'hidden') expectFailure(result, surface, 404, 'NOT_FOUND');
            if (outcome.kind === 'forbidden') expectFailure(result, surface, 403, 'FORBIDDEN');
            if (outcome.kind === 'illegal') {
              const claim = c.action === 'start' && c.status === 'in_progress' && c.assigned;
              const reason = !claim
                ? 'ILLEGAL_TRANSITION'
                : c.kind === 'assignee'
                  ? 'ALREADY_HELD'
                  : 'ALREADY_CLAIMED';
              const message = expectFailure(result, surface, 409, 'CONFLICT', reason);
              expect(message).toContain(`it is ${c.status}`);
              expect(message).toContain(
                `legal actions: ${outcome.legal.length ? outcome.legal.join(', ') : 'none'}`,
              );
            }
            expect(after, 'a refused action changes nothing').toEqual(before);
            expect(audit, 'a refused action writes no audit row').toEqual([]);
            return;
          }
          const task = dataOf(result, surface);
          expect(task).toEqual({ ...task, id: c.id, version: Number(before?.version) + 1 });
          expect(after?.version).toBe(Number(before?.version) + 1);
          expect(new Date(task.updatedAt).getTime()).toBeGreaterThanOrEqual(
            new Date(before?.updated_at as string).getTime(),
          );
          expect(audit).toHaveLength(1);
          expect(audit[0]).toMatchObject({
            action: TABLE[c.action].audit,
            actorId: actors[c.kind].id,
            taskId: c.id,
            projectSlug: PROJECT,
            context: { from: c.status, to: task.status },
          });
          switch (c.action) {
            case 'start':
              expect(task).toMatchObject({ status: 'in_progress', assignedTo: actors[c.kind].id });
              break;
            case 'progress':
              expect(task).toMatchObject({ status: 'in_progress', progressPercent: 55 });
              expect(audit[0]?.context).toMatchObject({ percent: 55, before: 30, note: 'halfway there' });
              break;
            case 'submitForReview':
              expect(task).toMatchObject({ status: 'review', progressPercent: 30 });
              break;
            case 'complete':
              expect(task).toMatchObject({ status: 'completed', progressPercent: 100 });
              expect(task.completedAt).toEqual(expect.any(String));
              break;
            case 'block':
              expect(task).toMatchObject({ status: 'blocked', blockedReason: 'waiting for the API key' });
              expect(audit[0]?.context).toMatchObject({ reason: 'waiting for the API key' });
              break;
            case 'unblock':
              expect(task).toMatchObject({
                status: c.assigned ? 'in_progress' : 'pending',
                blockedReason: null,
                assignedTo: c.assigned ? actors.assignee.id : null,
              });
              break;
            case 'reopen':
              expect(task).toMatchObject({ status: 'pending', completedAt: null, progressPercent: 100 });
              break;
          }
          if (c.action !== 'start') expect(task.assignedTo).toBe(c.assigned ? actors.assignee.id : null);
        });
      }
    });
  }
});

describe('claims under contention', () => {
  it('gives a pending task to exactly one of 50 concurrent claimers; the 49 others get 409', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `racer-${i}`);
    // Register the racers and make them members in bulk: the test is about the claim, not set-up.
    await query(
      t,
      sql`insert into workers (id, name) values ${sql.join(
        ids.map((id) => sql`(${id}, ${id})`),
        sql`, `,
      )}`,
    );
    await query(
      t,
      sql`insert into project_members (project_slug, worker_id) values ${sql.join(
        ids.map((id) => sql`(${PROJECT}, ${id})`),
        sql`, `,
      )}`,
    );
    const tokens = await Promise.all(ids.map((id) => t.token(id)));
    const [taskId] = await seedTasks(t, [{ createdBy: actors.creator.id, projectSlug: PROJECT }]);
    const results = await Promise.all(
      tokens.map((token) => t.rest('POST', `/api/tasks/${taskId}/start`, { token, body: {} })),
    );
    const winners = results.filter((r) => r.status === 200);
    const losers = results.filter((r) => r.status !== 200);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(49);
    for (const loser of losers) {
      expectFailure(loser, 'rest', 409, 'CONFLICT');
      expect(loser.body.error).toContain('it is in_progress');
    }
    const winner = ids[results.indexOf(winners[0] as HttpResult)];
    expect(winners[0]?.body).toMatchObject({ status: 'in_progress', assignedTo: winner, version: 2 });
    const row = await taskRow(t, taskId as number);
    expect(row).toMatchObject({ status: 'in_progress', assigned_to: winner, version: 2 });
    const audit = await auditRows(t, { taskId });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ action: 'started', actorId: winner });
  });
});
