import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../server/auth/actor.js';
import { EventFeed, follow, StreamClosedError } from '../../server/services/events/index.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, query, type TestActor } from '../helpers/factories.js';
import { SseStream } from '../helpers/sse.js';

// One reader per process hands each change to every open stream, and decides in memory who may
// see it. These hold that to the SQL rule the JSON page applies, and check the seams: a stream
// that reads its own way from far behind to the shared feed, and one that falls too far behind it.

let t: TestApp;
let base: string;
let a: Record<'owner' | 'member' | 'outsider' | 'loner' | 'admin', TestActor>;
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  t = await createTestApp({ listen: true, events: { pollMs: 200, maxStreamsPerActor: 5 } });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  a = await makeActors(
    t,
    { owner: 'olga', member: 'mika', outsider: 'otto', loner: 'lena', admin: 'adam' },
    { admin: 'admin' },
  );
  await makeProject(t, a.owner, 'alpha', { members: [a.member] });
  await makeProject(t, a.owner, 'beta');
});
afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});
afterAll(async () => {
  await t.close();
});

async function stream(actor: TestActor, query = ''): Promise<SseStream> {
  const s = await SseStream.open(`${base}/api/events${query}`, { authorization: `Bearer ${actor.token}` });
  expect(s.response.status).toBe(200);
  open.push(s);
  return s;
}

async function lastId(): Promise<number> {
  const [row] = await query<{ id: string | number }>(
    t,
    sql`select coalesce(max(id), 0) as id from audit_log`,
  );
  return Number(row?.id);
}

/** Waits until every event written so far is settled (the page, read up to the horizon, has the last). */
async function settled(): Promise<void> {
  const last = await lastId();
  await expect
    .poll(async () => {
      const page = ok(await t.rest('GET', `/api/events?after=${last - 1}`, { token: a.admin.token }));
      return page.items.map((e: { id: number }) => e.id);
    })
    .toEqual([last]);
}

/** Every event id after `after` the JSON page (visibility in SQL) gives `actor`, with `filter`. */
async function pageIds(actor: TestActor, after: number, filter = ''): Promise<number[]> {
  const ids: number[] = [];
  let cursor = after;
  for (;;) {
    const page = ok(
      await t.rest('GET', `/api/events?after=${cursor}&limit=500${filter}`, { token: actor.token }),
    );
    ids.push(...page.items.map((e: { id: number }) => e.id));
    if (page.items.length < 500) return ids;
    cursor = Number(page.nextCursor);
  }
}

const ids = (s: SseStream) => s.messages.map((m) => Number(m.id));

describe('the shared reader', () => {
  it('hands each stream exactly the events its caller may see and its filter asks for, as the SQL page does', async () => {
    const before = await lastId();
    const plain = await Promise.all(Object.values(a).map((actor) => stream(actor)));
    const alphaOnly = await stream(a.member, '?project=alpha');
    const betaForMember = await stream(a.member, '?project=beta');
    const inAlpha = await makeTask(t, a.owner, { projectSlug: 'alpha' });
    const inBeta = await makeTask(t, a.owner, { projectSlug: 'beta' });
    const loose = await makeTask(t, a.loner, { title: 'only mine' });
    const othersLoose = await makeTask(t, a.outsider, { title: 'his own' });
    const oneTask = await stream(a.member, `?taskId=${inAlpha.id}&after=${before}`);
    ok(await t.rest('POST', `/api/tasks/${inAlpha.id}/start`, { token: a.member.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${inBeta.id}/start`, { token: a.owner.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${loose.id}/start`, { token: a.loner.token, body: {} }));
    ok(await t.rest('DELETE', `/api/tasks/${othersLoose.id}`, { token: a.outsider.token }), 204);
    await makeActors(t, { newcomer: 'nina' });
    ok(
      await t.rest('POST', '/api/projects', { token: a.outsider.token, body: { slug: 'gamma', name: 'g' } }),
      201,
    );
    await makeTask(t, a.outsider, { projectSlug: 'gamma' });

    await settled();
    const expected = await Promise.all(Object.values(a).map((actor) => pageIds(actor, before)));
    for (const [i, s] of plain.entries()) {
      await expect.poll(() => ids(s), { timeout: 10_000 }).toEqual(expected[i]);
    }
    await expect
      .poll(() => ids(alphaOnly), { timeout: 10_000 })
      .toEqual(await pageIds(a.member, before, '&project=alpha'));
    expect(await pageIds(a.member, before, '&project=beta')).toEqual([]);
    await expect
      .poll(() => ids(oneTask), { timeout: 10_000 })
      .toEqual(await pageIds(a.member, before, `&taskId=${inAlpha.id}`));
    // Everything above has arrived; nothing the member may not see came with it.
    expect(betaForMember.messages).toEqual([]);
    // The fixture tells the cases apart: the admin sees most, and every caller sees something.
    const sizes = expected.map((list) => list.length);
    const admin = sizes.pop() ?? 0;
    expect(Math.min(...sizes)).toBeGreaterThan(0);
    expect(admin).toBeGreaterThan(Math.max(...sizes));
  });

  it('takes a stream resuming from far behind through its own pages into the shared feed: each event once, in order', async () => {
    const before = await lastId();
    // A backlog of 250 events, more than two of a stream's own pages.
    await query(
      t,
      sql`insert into audit_log (actor_id, actor_type, action)
        select 'backlog', 'human', 'worker_registered' from generate_series(1, 250)`,
    );
    const writers = Promise.all(
      Array.from({ length: 4 }, async () => {
        const task = await makeTask(t, a.owner, { projectSlug: 'alpha' });
        for (let i = 0; i < 15; i++) {
          ok(
            await t.rest('PATCH', `/api/tasks/${task.id}`, {
              token: a.owner.token,
              body: { title: `v${i}` },
            }),
          );
        }
      }),
    );
    const resumed = await stream(a.admin, `?after=${before}`);
    await writers;
    await settled();
    const expected = await pageIds(a.admin, before);
    expect(expected.length).toBe(250 + 4 * 16);
    await expect.poll(() => ids(resumed), { timeout: 20_000 }).toEqual(expected);
  }, 60_000);
  it("stops a member removed behind TaskFlow's back within 5 s (no membership event to go by)", async () => {
    const s = await stream(a.member);
    const seen = await makeTask(t, a.owner, { projectSlug: 'alpha' });
    await expect.poll(() => s.events.map((e) => e.taskId)).toEqual([seen.id]);
    await query(
      t,
      sql`delete from project_members where project_slug = 'alpha' and worker_id = ${a.member.id}`,
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      const unseen = await makeTask(t, a.owner, { projectSlug: 'alpha' });
      const marker = await makeTask(t, a.member, { title: 'still mine' });
      await expect.poll(() => s.events.map((e) => e.taskId), { timeout: 10_000 }).toContain(marker.id);
      expect(s.events.map((e) => e.taskId)).not.toContain(unseen.id);
    } finally {
      await query(
        t,
        sql`insert into project_members (project_slug, worker_id, role) values ('alpha', ${a.member.id}, 'member')`,
      );
    }
  }, 30_000);
});

describe('a stream that stops taking events', () => {
  const admin: Actor = { id: 'adam', type: 'human', role: 'admin', email: null, name: 'adam' };
  let feed: EventFeed;

  beforeAll(() => {
    feed = new EventFeed(t.db.database, { pollMs: 100, log: { warn: () => {} } });
  });
  afterAll(async () => {
    await feed.close();
  });

  it('is dropped from the shared feed once far behind, reads the rest from the table, and loses nothing', async () => {
    const ctx = { tx: t.db.database.db, actor: admin, requestId: 'test' };
    const stop = new AbortController();
    const rows = await follow(ctx, feed, {}, stop.signal);
    const first = rows.next();
    await query(
      t,
      sql`insert into audit_log (actor_id, actor_type, action)
        select 'burst', 'human', 'worker_registered' from generate_series(1, 2500)`,
    );
    const last = await lastId();
    // The shared reader has handed all of them out (more than a stream may have queued) ...
    await expect.poll(() => feed.shared, { timeout: 20_000 }).toBe(last);
    // ... and the stream, taking them only now, still gets every one, once and in order.
    const got = [Number((await first).value?.entry.id)];
    while (got.length < 2500) got.push(Number((await rows.next()).value?.entry.id));
    expect(got).toEqual(Array.from({ length: 2500 }, (_, i) => last - 2499 + i));
    stop.abort();
    expect((await rows.next()).done).toBe(true);
  }, 60_000);

  it('ends at once, as a shutdown, when the feed closes while it waits', async () => {
    const other = new EventFeed(t.db.database, { log: { warn: () => {} } });
    const rows = await follow(
      { tx: t.db.database.db, actor: admin, requestId: 'test' },
      other,
      {},
      new AbortController().signal,
    );
    const next = rows.next();
    const started = performance.now();
    await other.close();
    await expect(next).rejects.toBeInstanceOf(StreamClosedError);
    expect(performance.now() - started).toBeLessThan(1_000);
  });
});

describe('the first stream of a process', () => {
  it('starts at the present as the call returns: a change committed right after is in it', async () => {
    // A feed nobody has read yet: this stream is the one that starts it (LISTEN, the horizon).
    const fresh = new EventFeed(t.db.database, { log: { warn: () => {} } });
    const actor: Actor = { id: a.owner.id, type: 'human', role: 'user', email: null, name: 'olga' };
    const stop = new AbortController();
    try {
      const rows = await follow({ tx: t.db.database.db, actor, requestId: 'test' }, fresh, {}, stop.signal);
      const task = await makeTask(t, a.owner, { projectSlug: 'alpha', title: 'right after' });
      const first = await rows.next();
      expect([first.value?.entry.action, first.value?.entry.taskId]).toEqual(['created', task.id]);
      stop.abort();
      expect((await rows.next()).done).toBe(true);
    } finally {
      await fresh.close();
    }
  });
});
