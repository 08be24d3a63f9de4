import { getEventListeners } from 'node:events';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../server/auth/actor.js';
import { Fanout, type Subscriber } from '../../server/services/events/fanout.js';
import { EventFeed, type EventRow, follow, StreamClosedError } from '../../server/services/events/index.js';
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

/** A stream's events one at a time, as its client reads them. */
async function* each(batches: AsyncIterable<EventRow[]>): AsyncGenerator<EventRow> {
  for await (const rows of batches) yield* rows;
}

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
    const rows = each(await follow(ctx, feed, {}, stop.signal));
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

  it('lets go of its signal when it leaves the feed: a stream that falls behind and rejoins keeps one seat, not every old one', async () => {
    const fanout = new Fanout(t.db.database.db, () => 0, new AbortController().signal, { warn: () => {} });
    const signal = new AbortController().signal;
    for (let round = 0; round < 20; round += 1) {
      const seat = fanout.join(admin, {}, 0, signal);
      expect(seat).not.toBeNull();
      expect(getEventListeners(signal, 'abort')).toHaveLength(1);
      fanout.leave(seat as Subscriber);
    }
    expect(getEventListeners(signal, 'abort')).toHaveLength(0);
  });

  it('ends at once, as a shutdown, when the feed closes while it waits', async () => {
    const other = new EventFeed(t.db.database, { log: { warn: () => {} } });
    const rows = each(
      await follow(
        { tx: t.db.database.db, actor: admin, requestId: 'test' },
        other,
        {},
        new AbortController().signal,
      ),
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
      const rows = each(
        await follow({ tx: t.db.database.db, actor, requestId: 'test' }, fresh, {}, stop.signal),
      );
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

describe('more streams than one slice of the hand-out', () => {
  it('does not seat, unserved, a stream that caught up to the position while a batch is being handed out', async () => {
    const admin: Actor = { id: 'adam', type: 'human', role: 'admin', email: null, name: 'adam' };
    const closed = new AbortController();
    let horizon = await lastId();
    const fanout = new Fanout(t.db.database.db, () => horizon, closed.signal, { warn: () => {} });
    fanout.wake();
    await fanout.idle();
    const before = fanout.position;
    expect(before).toBe(horizon);
    // Each with a signal of its own, as every stream has.
    const seated = Array.from({ length: 60 }, () =>
      fanout.join(admin, {}, before, AbortSignal.any([closed.signal])),
    );
    await query(
      t,
      sql`insert into audit_log (actor_id, actor_type, action)
        select 'seam', 'human', 'worker_registered' from generate_series(1, 3)`,
    );
    horizon = await lastId();
    const batch = [before + 1, before + 2, before + 3];
    const takeAll = async (s: Subscriber) => {
      const got: number[] = [];
      while (got.length < batch.length) {
        const rows = await s.take();
        if (!rows) break;
        got.push(...rows.map((row) => row.entry.id));
      }
      return got;
    };
    fanout.wake();
    // The first stream has its events: the first slice is handed out, the later ones are not yet.
    const first = seated[0] as Subscriber;
    // Handed out together, taken together: the stream writes the three in one go.
    expect((await first.take())?.map((row) => row.entry.id)).toEqual(batch);
    // A stream that read its own way up to where the feed stood before this batch asks for a seat.
    const late = fanout.join(admin, {}, before, closed.signal);
    // Either way it gets this batch: from the feed if seated, else from its own read of the table.
    const outcome = late
      ? await Promise.race([takeAll(late), new Promise((resolve) => setTimeout(resolve, 2_000, 'never'))])
      : 'refused: it reads this batch itself';
    await fanout.idle();
    expect(['refused: it reads this batch itself', batch]).toContainEqual(outcome);
    for (const s of seated.slice(1)) expect(await takeAll(s as Subscriber)).toEqual(batch);
    closed.abort();
  });

  it('gives each stream every event after its start once and in order, streams joining while it hands out', async () => {
    const admin: Actor = { id: 'adam', type: 'human', role: 'admin', email: null, name: 'adam' };
    const feed = new EventFeed(t.db.database, {
      pollMs: 50,
      maxStreamsPerActor: 200,
      log: { warn: () => {} },
    });
    const ctx = { tx: t.db.database.db, actor: admin, requestId: 'test' };
    const stop = new AbortController();
    const streams: { from: number; resume: boolean; got: number[] }[] = [];
    const consumers: Promise<void>[] = [];
    // Half the streams start at the present, half resume from a little behind it: those read their
    // own pages up to the shared feed's position, then take a seat, often mid-way through a hand-out.
    const join = async (resume: boolean) => {
      const present = await lastId();
      const from = resume ? Math.max(0, present - 15) : present;
      const rows = each(await follow(ctx, feed, resume ? { lastEventId: from } : {}, stop.signal));
      const s = { from, resume, got: [] as number[] };
      streams.push(s);
      consumers.push(
        (async () => {
          for await (const row of rows) s.got.push(row.entry.id);
        })(),
      );
    };
    try {
      // Ten rounds of ten new streams, each followed at once by a burst the feed hands to all of
      // them: the next round joins while the slices of the last are still being handed out.
      for (let round = 0; round < 10; round++) {
        await Promise.all(Array.from({ length: 10 }, (_, i) => join(i % 2 === 1)));
        await query(
          t,
          sql`insert into audit_log (actor_id, actor_type, action)
            select 'slices', 'human', 'worker_registered' from generate_series(1, 20)`,
        );
      }
      const last = await lastId();
      await expect
        .poll(() => streams.filter((s) => s.got.at(-1) !== last).length, { timeout: 20_000 })
        .toBe(0);
      for (const s of streams) {
        // A stream from the present starts at the feed's horizon, which may not have reached the
        // last commit yet: it may begin a little earlier, never later.
        const start = (s.got[0] ?? 0) - 1;
        expect(start).toBeLessThanOrEqual(s.from);
        expect(s.resume ? start : s.from).toBe(s.from);
        expect(s.got).toEqual(Array.from({ length: last - start }, (_, i) => start + 1 + i));
      }
    } finally {
      stop.abort();
      await Promise.allSettled(consumers);
      await feed.close();
    }
  }, 60_000);
});
