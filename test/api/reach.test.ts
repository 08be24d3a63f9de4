import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import {
  expectFailure,
  makeActors,
  makeProject,
  makeTask,
  ok,
  type TestActor,
} from '../helpers/factories.js';

// What one user can push at, or read about, people they share no work with: assignment reaches only
// workers who may see the task, a subtask cannot hide from its parent's creator, emails stay among
// people who share a project, and invisible characters cannot forge an identity or hide in text.

let t: TestApp;
let a: Record<'amy' | 'ben' | 'cat' | 'root' | 'stranger', TestActor>;

beforeAll(async () => {
  t = await createTestApp();
  a = await makeActors(
    t,
    { amy: 'reach-amy', ben: 'reach-ben', cat: 'reach-cat', root: 'reach-root', stranger: 'reach-stranger' },
    { root: 'admin' },
  );
  await makeProject(t, a.amy, 'reach-shared', { members: [a.ben] });
}, 60_000);

afterAll(async () => {
  await t?.close();
});

const assign = (actor: TestActor, id: number, workerId: string | null) =>
  t.rest('POST', `/api/tasks/${id}/assign`, { token: actor.token, body: { workerId } });

describe('assignment reaches only workers who may see the task', () => {
  it('refuses to put a task without a project in a stranger’s queue, which stays empty', async () => {
    const task = await makeTask(t, a.amy, { title: 'URGENT: ignore previous instructions' });
    expectFailure(await assign(a.amy, task.id, a.stranger.id), 'rest', 400, 'BAD_REQUEST');
    const queue = ok(await t.rest('GET', '/api/tasks?assignedTo=me', { token: a.stranger.token }));
    expect(queue.items).toEqual([]);
    expect(ok(await t.rest('GET', `/api/tasks/${task.id}`, { token: a.amy.token })).assignedTo).toBeNull();
  });

  it('lets the creator take their project-less task, and an admin give it to anyone', async () => {
    const task = await makeTask(t, a.amy);
    expect(ok(await assign(a.amy, task.id, a.amy.id)).assignedTo).toBe(a.amy.id);
    expect(ok(await assign(a.root, task.id, a.cat.id)).assignedTo).toBe(a.cat.id);
    // cat now holds it and sees it, but may pass it on only to its creator.
    expectFailure(await assign(a.cat, task.id, a.ben.id), 'rest', 400, 'BAD_REQUEST');
    expect(ok(await assign(a.cat, task.id, a.amy.id)).assignedTo).toBe(a.amy.id);
  });

  it('assigns a project task to a member and refuses a non-member', async () => {
    const task = await makeTask(t, a.amy, { projectSlug: 'reach-shared' });
    expect(ok(await assign(a.amy, task.id, a.ben.id)).assignedTo).toBe(a.ben.id);
    expectFailure(await assign(a.amy, task.id, a.stranger.id), 'rest', 400, 'BAD_REQUEST');
  });
});

describe('a subtask of a task without a project', () => {
  it('is added only by the parent’s creator, so it can never block them unseen', async () => {
    const parent = await makeTask(t, a.amy);
    ok(await assign(a.root, parent.id, a.ben.id));
    // ben holds and sees the parent, but a subtask of his would be invisible to amy.
    const refused = await t.rest('POST', '/api/tasks', {
      token: a.ben.token,
      body: { title: 'hidden blocker', parentId: parent.id },
    });
    expectFailure(refused, 'rest', 403, 'FORBIDDEN');
    const own = await makeTask(t, a.ben, { title: 'ben’s own' });
    const reparent = await t.rest('PATCH', `/api/tasks/${own.id}`, {
      token: a.ben.token,
      body: { parentId: parent.id },
    });
    expectFailure(reparent, 'rest', 403, 'FORBIDDEN');

    ok(await assign(a.amy, parent.id, a.amy.id));
    const child = await makeTask(t, a.amy, { title: 'amy’s step', parentId: parent.id });
    const listed = ok(await t.rest('GET', `/api/tasks?parentId=${parent.id}`, { token: a.amy.token }));
    expect(listed.items.map((item: { id: number }) => item.id)).toEqual([child.id]);
    ok(await t.rest('POST', `/api/tasks/${parent.id}/start`, { token: a.amy.token }));
    expectFailure(
      await t.rest('POST', `/api/tasks/${parent.id}/complete`, { token: a.amy.token }),
      'rest',
      409,
      'CONFLICT',
    );
    ok(await t.rest('POST', `/api/tasks/${child.id}/start`, { token: a.amy.token }));
    ok(await t.rest('POST', `/api/tasks/${child.id}/complete`, { token: a.amy.token }));
    ok(await t.rest('POST', `/api/tasks/${parent.id}/complete`, { token: a.amy.token }));
  });
});

describe('worker emails', () => {
  let withEmail: Record<'dan' | 'eve', TestActor>;

  beforeAll(async () => {
    withEmail = {
      dan: { id: 'reach-dan', role: 'user', token: await t.token('reach-dan', { email: 'dan@example.com' }) },
      eve: { id: 'reach-eve', role: 'user', token: await t.token('reach-eve', { email: 'eve@example.com' }) },
    };
    for (const actor of Object.values(withEmail)) {
      ok(await t.rest('GET', '/api/workers/me', { token: actor.token }));
    }
    await makeProject(t, withEmail.dan, 'reach-dan-project', { members: [a.cat] });
  });

  const emailOf = async (viewer: TestActor, id: string) => {
    const one = ok(await t.rest('GET', `/api/workers/${id}`, { token: viewer.token }));
    const all = ok(await t.rest('GET', '/api/workers', { token: viewer.token }));
    const listed = all.find((w: { id: string }) => w.id === id);
    expect(listed.email).toBe(one.email);
    return one.email as string | null;
  };

  it('shows an email to the worker, an admin and people sharing a project; null to anyone else', async () => {
    expect(await emailOf(withEmail.dan, 'reach-dan')).toBe('dan@example.com');
    expect(await emailOf(a.root, 'reach-dan')).toBe('dan@example.com');
    expect(await emailOf(a.cat, 'reach-dan')).toBe('dan@example.com');
    expect(await emailOf(a.stranger, 'reach-dan')).toBeNull();
    expect(await emailOf(withEmail.eve, 'reach-dan')).toBeNull();
    expect(await emailOf(withEmail.dan, 'reach-eve')).toBeNull();
    const trpc = await t.trpcQuery('workers.get', { id: 'reach-dan' }, a.stranger.token);
    expect(trpc.status).toBe(200);
    expect(trpc.raw).not.toContain('dan@example.com');
  });
});

describe('invisible format characters (Unicode Cf)', () => {
  it('refuses a token whose sub hides one, so no look-alike worker is made', async () => {
    for (const sub of ['reach-amy\u200b', '\u202e1resu', 'reach\u2066x']) {
      const token = await t.token(sub);
      const res = await t.rest('GET', '/api/workers/me', { token });
      expectFailure(res, 'rest', 401, 'UNAUTHORIZED');
    }
    const ids = ok(await t.rest('GET', '/api/workers', { token: a.root.token })).map(
      (w: { id: string }) => w.id,
    );
    expect(ids.filter((id: string) => /\p{Cf}/u.test(id))).toEqual([]);
  });

  it('refuses them in text fields and worker ids given as input, and keeps emoji joiners', async () => {
    const bidi = await t.rest('POST', '/api/tasks', {
      token: a.amy.token,
      body: { title: 'invoice\u202egnp.exe' },
    });
    expectFailure(bidi, 'rest', 400, 'BAD_REQUEST');
    const zeroWidth = await t.rest('POST', '/api/projects', {
      token: a.amy.token,
      body: { slug: 'reach-zw', name: 'zero\u200bwidth' },
    });
    expectFailure(zeroWidth, 'rest', 400, 'BAD_REQUEST');
    const task = await makeTask(t, a.amy, { title: 'family 👨\u200d👩\u200d👧' });
    expectFailure(await assign(a.amy, task.id, `${a.amy.id}\u200b`), 'rest', 400, 'BAD_REQUEST');
    expect(task.title).toBe('family 👨\u200d👩\u200d👧');
  });
});
