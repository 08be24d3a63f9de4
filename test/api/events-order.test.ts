import type { AddressInfo } from 'node:net';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeTask, ok, type TestActor } from '../helpers/factories.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';
import { SseStream } from '../helpers/sse.js';

// Audit ids are taken at insert and become visible at commit: a transaction holding id N can
// commit after the one that took N + 1. These force that order on a real server and check the
// stream neither skips N nor repeats anything, and passes N once it is rolled back.

describePostgresOnly('events in id order when transactions commit out of order (PostgreSQL)', () => {
  let t: TestApp;
  let base: string;
  let admin: TestActor;
  let holder: postgres.Sql;
  const streams: SseStream[] = [];
  // Transactions still held when a test fails are rolled back, so the next test gets the connection.
  const holds: { finish(outcome: 'rollback'): void; done: Promise<void> }[] = [];

  beforeAll(async () => {
    t = await createTestApp({ listen: true, events: { pollMs: 100, gapRetryMs: 5 } });
    base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
    ({ admin } = await makeActors(t, { admin: 'ada' }, { admin: 'admin' }));
    holder = postgres(t.db.url ?? '', { max: 1, onnotice: () => {} });
  });
  afterEach(async () => {
    for (const hold of holds.splice(0)) {
      hold.finish('rollback');
      await hold.done;
    }
    for (const stream of streams.splice(0)) await stream.close();
  });
  afterAll(async () => {
    await holder.end({ timeout: 1 });
    await t.close();
  });

  /** Opens a transaction that inserts an audit row and stays open until `finish` is called. */
  async function holdAnId() {
    let finish: (outcome: 'commit' | 'rollback') => void = () => {};
    const decided = new Promise<'commit' | 'rollback'>((resolve) => {
      finish = resolve;
    });
    let took: (id: number) => void = () => {};
    const id = new Promise<number>((resolve) => {
      took = resolve;
    });
    const done = holder
      .begin(async (sql) => {
        const [row] = await sql<{ id: string }[]>`insert into audit_log (actor_id, actor_type, action)
          values ('held', 'human', 'worker_registered') returning id`;
        took(Number(row?.id));
        if ((await decided) === 'rollback') throw new Error('rolled back on purpose');
      })
      .catch((error: Error) => {
        if (error.message !== 'rolled back on purpose') throw error;
      });
    holds.push({ finish, done });
    return { id: await id, finish, done };
  }

  /** A stream from after the last id now, so its start does not race the writes that follow. */
  async function openAfterLast(): Promise<SseStream> {
    // A JSON page first: the instance's feed is started (its horizon set) before any id is held.
    await page(0);
    const last = ok(await t.rest('GET', '/api/audit?limit=1', { token: admin.token })).items[0]?.id ?? 0;
    const stream = await SseStream.open(`${base}/api/events?after=${last}`, {
      authorization: `Bearer ${admin.token}`,
    });
    streams.push(stream);
    return stream;
  }

  async function page(after: number) {
    return ok(await t.rest('GET', `/api/events?after=${after}&limit=500`, { token: admin.token }));
  }

  it('holds a later id until the earlier transaction commits, then delivers both in order', async () => {
    const stream = await openAfterLast();
    const held = await holdAnId();
    const task = await makeTask(t, admin, { title: 'committed first' });
    const later = ok(await t.rest('GET', `/api/tasks/${task.id}/history`, { token: admin.token }));
    const laterId: number = later.items[0].id;
    expect(laterId).toBeGreaterThan(held.id);
    // Long enough for several wake-ups and polls: the later id stays undelivered behind the gap.
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(stream.messages.filter((m) => Number(m.id) >= held.id)).toEqual([]);
    const during = await page(held.id - 1);
    expect(during.items).toEqual([]);
    expect(Number(during.nextCursor)).toBeLessThan(held.id);

    held.finish('commit');
    await held.done;
    await stream.waitFor(2);
    expect(stream.messages.map((m) => [Number(m.id), m.event])).toEqual([
      [held.id, 'worker_registered'],
      [laterId, 'created'],
    ]);
    const after = await page(held.id - 1);
    expect(after.items.map((e: { id: number }) => e.id)).toEqual([held.id, laterId]);
  });

  it('passes an id whose transaction rolled back, after holding the ones behind it', async () => {
    const stream = await openAfterLast();
    const held = await holdAnId();
    const task = await makeTask(t, admin, { title: 'behind a rollback' });
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(stream.messages).toEqual([]);
    held.finish('rollback');
    await held.done;
    await stream.waitFor(1);
    expect(stream.events.map((e) => [e.action, e.taskId])).toEqual([['created', task.id]]);
    expect(Number(stream.messages[0]?.id)).toBe(held.id + 1);
    const resumed = await page(held.id - 1);
    expect(resumed.items.map((e: { id: number }) => e.id)).toEqual([held.id + 1]);
  });

  it('is not held back by a transaction that never wrote to the audit log', async () => {
    const stream = await openAfterLast();
    const bystander = postgres(t.db.url ?? '', { max: 1, onnotice: () => {} });
    let leave: () => void = () => {};
    const left = new Promise<void>((resolve) => {
      leave = resolve;
    });
    let opened: () => void = () => {};
    const open = new Promise<void>((resolve) => {
      opened = resolve;
    });
    const reading = bystander.begin(async (sql) => {
      await sql`select count(*) from tasks`;
      opened();
      await left;
    });
    try {
      await open;
      const held = await holdAnId();
      const task = await makeTask(t, admin, { title: 'behind a gap, beside a reader' });
      held.finish('commit');
      await held.done;
      // The reader's transaction is still open: only the writer of the missing id was waited for.
      await stream.waitFor(2);
      expect(stream.events.map((e) => e.action)).toEqual(['worker_registered', 'created']);
      expect(stream.events[1]?.taskId).toBe(task.id);
    } finally {
      leave();
      await reading;
      await bystander.end({ timeout: 1 });
    }
  });

  it('delivers every id once and in order while many transactions interleave with held ones', async () => {
    const stream = await openAfterLast();
    const first = await holdAnId();
    const writes = Promise.all(Array.from({ length: 20 }, () => makeTask(t, admin)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    first.finish('commit');
    await Promise.all([writes, first.done]);
    await stream.waitFor(21);
    const ids = stream.messages.map((m) => Number(m.id));
    expect(ids[0]).toBe(first.id);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(21);
  });
});
