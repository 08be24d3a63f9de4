import { type AddressInfo, connect } from 'node:net';
import { EventSource } from 'eventsource';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { buildApp } from '../../server/app.js';
import { createRemoteVerifier } from '../../server/auth/verifier.js';
import { createTaskflowClient, type TaskflowClient } from '../../shared/client.js';
import { TaskEvent } from '../../shared/schemas/event.js';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, type TestActor } from '../helpers/factories.js';
import { TEST_AUDIENCE, TEST_ISSUER } from '../helpers/jwks-server.js';
import { SseStream } from '../helpers/sse.js';

let t: TestApp;
let base: string;
let a: Record<'owner' | 'member' | 'outsider' | 'admin', TestActor>;
// Streams and subscriptions, closed after each test; instances, closed after the file.
const open: { close(): Promise<void> }[] = [];
const instances: { close(): Promise<void> }[] = [];

const fast = { pollMs: 200, pingMs: 100, stallMs: 500, maxStreamsPerActor: 3 };

beforeAll(async () => {
  t = await createTestApp({ listen: true, events: fast });
  base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  a = await makeActors(t, { owner: 'ola', member: 'max', outsider: 'oz', admin: 'ada' }, { admin: 'admin' });
  await makeProject(t, a.owner, 'board', { members: [a.member] });
});
afterEach(async () => {
  for (const item of open.splice(0)) await item.close();
});
afterAll(async () => {
  // Every stream, client and second instance is closed before the database goes.
  for (const item of instances.splice(0)) await item.close();
  await t.close();
});

async function stream(actor: TestActor, query = '', headers: Record<string, string> = {}, url = base) {
  const s = await SseStream.open(`${url}/api/events${query}`, {
    authorization: `Bearer ${actor.token}`,
    ...headers,
  });
  open.push(s);
  return s;
}

async function lastAuditId(actor: TestActor = a.admin): Promise<number> {
  const page = ok(await t.rest('GET', '/api/audit?limit=1', { token: actor.token }));
  return page.items[0]?.id ?? 0;
}

function subscriptionClient(actor: TestActor, target: () => string): TaskflowClient {
  return createTaskflowClient({
    url: base,
    token: actor.token,
    EventSource,
    // Sends every (re)connection to whichever instance `target` names now, as a load balancer would.
    fetch: (url, init) => fetch(String(url).replace(base, target()), init),
  });
}

interface Received {
  ids: string[];
  events: TaskEvent[];
  /** The server has fixed where the subscription starts: a change committed from now on is in it. */
  started: boolean;
  unsubscribe(): void;
}

function subscribe(
  client: TaskflowClient,
  input: { project?: string; lastEventId?: string | null } = {},
): Received {
  const received: Received = { ids: [], events: [], started: false, unsubscribe: () => {} };
  const sub = client.events.onChange.subscribe(input, {
    onStarted: () => {
      received.started = true;
    },
    onData: (envelope) => {
      received.ids.push(envelope.id);
      received.events.push(envelope.data);
    },
  });
  received.unsubscribe = () => sub.unsubscribe();
  open.push({ close: async () => sub.unsubscribe() });
  return received;
}

describe('GET /api/events as Server-Sent Events', () => {
  it('delivers each change as an event: id = audit id, event = action, data = entry + task after the change', async () => {
    const s = await stream(a.member, '?project=board');
    expect(s.response.status).toBe(200);
    expect(s.response.headers.get('content-type')).toContain('text/event-stream');
    // Delimited by the connection's end, not chunked: one write per event.
    expect(s.response.headers.get('transfer-encoding')).toBeNull();
    expect(s.response.headers.get('connection')).toBe('close');
    const task = await makeTask(t, a.owner, { projectSlug: 'board', title: 'live' });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    ok(
      await t.rest('POST', `/api/tasks/${task.id}/progress`, {
        token: a.member.token,
        body: { percent: 40 },
      }),
    );
    await s.waitFor(3);
    const history = ok(await t.rest('GET', `/api/tasks/${task.id}/history`, { token: a.member.token }));
    const entries = Array.isArray(history) ? history : history.items;
    expect(s.messages.map((m) => [m.event, Number(m.id)])).toEqual(
      entries.map((e: { action: string; id: number }) => [e.action, e.id]),
    );
    const events = s.events.map((e) => TaskEvent.parse(e));
    expect(events.map((e) => [e.action, e.task?.status, e.task?.progressPercent, e.task?.version])).toEqual([
      ['created', 'pending', 0, 1],
      ['started', 'in_progress', 0, 2],
      ['progressed', 'in_progress', 40, 3],
    ]);
    expect(events[1]).toMatchObject({ actorId: a.member.id, taskId: task.id, projectSlug: 'board' });
  });

  it('gives a deleted task null and pings an idle stream', async () => {
    const s = await stream(a.owner, '?project=board');
    const task = await makeTask(t, a.owner, { projectSlug: 'board' });
    ok(await t.rest('DELETE', `/api/tasks/${task.id}`, { token: a.owner.token }), 204);
    await s.waitFor(2);
    expect(s.events.map((e) => [e.action, e.task?.id ?? null])).toEqual([
      ['created', task.id],
      ['deleted', null],
    ]);
    await expect.poll(() => s.comments.includes('ping'), { timeout: 2_000 }).toBe(true);
  });

  it('resumes after Last-Event-ID (or ?after=) with exactly the missed events', async () => {
    const before = await lastAuditId();
    const task = await makeTask(t, a.member, { projectSlug: 'board' });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${task.id}/block`, { token: a.member.token, body: { reason: 'x' } }));
    const byHeader = await stream(a.member, `?taskId=${task.id}`, { 'last-event-id': String(before) });
    const byQuery = await stream(a.member, `?taskId=${task.id}&after=${before}`);
    await byHeader.waitFor(3);
    await byQuery.waitFor(3);
    const firstId = Number(byHeader.messages[0]?.id);
    const resumed = await stream(a.member, `?taskId=${task.id}`, { 'last-event-id': String(firstId) });
    ok(await t.rest('POST', `/api/tasks/${task.id}/unblock`, { token: a.member.token, body: {} }));
    await resumed.waitFor(3);
    expect(byHeader.messages.slice(0, 3).map((m) => m.event)).toEqual(['created', 'started', 'blocked']);
    expect(byQuery.messages.slice(0, 3).map((m) => m.id)).toEqual(
      byHeader.messages.slice(0, 3).map((m) => m.id),
    );
    expect(resumed.messages.map((m) => m.event)).toEqual(['started', 'blocked', 'unblocked']);
  });

  it('never shows a non-member a private project, and a removed member stops at once', async () => {
    const outsider = await stream(a.outsider);
    const member = await stream(a.member);
    const task = await makeTask(t, a.owner, { projectSlug: 'board', title: 'private' });
    await member.waitFor(1);
    ok(await t.rest('DELETE', `/api/projects/board/members/${a.member.id}`, { token: a.owner.token }), 204);
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.owner.token, body: {} }));
    // Then something both may see: each one's own project-less task.
    const mine = await makeTask(t, a.member, { title: 'mine' });
    const his = await makeTask(t, a.outsider, { title: 'his' });
    await member.waitFor(2);
    await outsider.waitFor(1);
    expect(member.events.map((e) => [e.action, e.taskId])).toEqual([
      ['created', task.id],
      ['created', mine.id],
    ]);
    expect(outsider.events.map((e) => [e.action, e.taskId])).toEqual([['created', his.id]]);
    ok(
      await t.rest('PUT', `/api/projects/board/members/${a.member.id}`, {
        token: a.owner.token,
        body: { role: 'member' },
      }),
    );
  });

  it('refuses bad input, a missing token and streams over the per-caller cap, with the error body', async () => {
    const bad = await stream(a.member, '?after=-4');
    expectErrorBody(
      {
        status: bad.response.status,
        headers: Object.fromEntries(bad.response.headers),
        body: await bad.response.json(),
        raw: '',
      },
      400,
    );
    const anonymous = await SseStream.open(`${base}/api/events`, {});
    expect(anonymous.response.status).toBe(401);
    const streams = [await stream(a.admin), await stream(a.admin), await stream(a.admin)];
    const over = await stream(a.admin);
    expect(over.response.status).toBe(429);
    expect(await over.response.json()).toMatchObject({ code: 'TOO_MANY_REQUESTS', status_code: 429 });
    await streams[0]?.close();
    await expect
      .poll(async () => {
        const again = await stream(a.admin);
        await again.close();
        return again.response.status;
      })
      .toBe(200);
  });
});

describe('a client that stops reading', () => {
  it('is cut off after the stall time instead of being buffered for', async () => {
    const port = (t.app.server.address() as AddressInfo).port;
    const socket = connect(port, '127.0.0.1');
    let closed = false;
    socket.on('close', () => {
      closed = true;
    });
    socket.on('error', () => {});
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    socket.write(
      `GET /api/events?project=board HTTP/1.1\r\nhost: 127.0.0.1\r\naccept: text/event-stream\r\nauthorization: Bearer ${a.owner.token}\r\n\r\n`,
    );
    socket.pause(); // reads nothing more: the server's buffers and the socket's fill up
    open.push({ close: async () => void socket.destroy() });
    const task = await makeTask(t, a.owner, { projectSlug: 'board' });
    const big = 'x'.repeat(10_000);
    for (let i = 0; i < 300 && !t.logs.some((line) => line.includes('event stream cut')); i++) {
      ok(
        await t.rest('PATCH', `/api/tasks/${task.id}`, {
          token: a.owner.token,
          body: { description: `${i}${big}`.slice(0, 10_000) },
        }),
      );
    }
    await expect
      .poll(() => t.logs.some((line) => line.includes('event stream cut')), { timeout: 10_000 })
      .toBe(true);
    // Reading again drains what was in flight, then meets the end: the server closed the connection.
    socket.resume();
    await expect.poll(() => closed, { timeout: 10_000 }).toBe(true);
  }, 120_000);
});

describe('GET /api/events as one JSON page', () => {
  it('answers the events after `after`, oldest first, with the cursor of the next page', async () => {
    const before = await lastAuditId();
    const task = await makeTask(t, a.member, { projectSlug: 'board' });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    const first = ok(
      await t.rest('GET', `/api/events?after=${before}&project=board&limit=1`, { token: a.member.token }),
    );
    expect(first.items.map((e: TaskEvent) => e.action)).toEqual(['created']);
    const second = ok(
      await t.rest('GET', `/api/events?after=${first.nextCursor}&project=board`, { token: a.member.token }),
    );
    expect(second.items.map((e: TaskEvent) => [e.action, e.task?.status])).toEqual([
      ['started', 'in_progress'],
    ]);
    const outsider = ok(await t.rest('GET', `/api/events?after=${before}`, { token: a.outsider.token }));
    expect(outsider.items).toEqual([]);
    expect(Number(outsider.nextCursor)).toBeGreaterThanOrEqual(second.items[0].id);
  });
});

describe('the OpenAPI document', () => {
  it('documents GET /api/events in both forms: the JSON page and the event stream with Last-Event-ID', async () => {
    const document = ok(await t.rest('GET', '/openapi.json'));
    const operation = document.paths['/events'].get;
    expect(Object.keys(operation.responses['200'].content).sort()).toEqual([
      'application/json',
      'text/event-stream',
    ]);
    expect(operation.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`)).toEqual(
      expect.arrayContaining(['query:after', 'query:project', 'query:taskId', 'header:Last-Event-ID']),
    );
  });
});

describe('events.onChange (the typed client: httpSubscriptionLink)', () => {
  it('yields tracked events and resumes from lastEventId without loss or repeats', async () => {
    const client = subscriptionClient(a.member, () => base);
    const live = subscribe(client, { project: 'board' });
    await expect.poll(() => live.started, { timeout: 15_000 }).toBe(true);
    const task = await makeTask(t, a.member, { projectSlug: 'board' });
    await expect.poll(() => live.events.length, { timeout: 15_000 }).toBe(1);
    live.unsubscribe();
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${task.id}/review`, { token: a.member.token, body: {} }));
    const resumed = subscribe(client, { project: 'board', lastEventId: live.ids[0] });
    await expect.poll(() => resumed.events.length, { timeout: 15_000 }).toBe(2);
    expect(live.ids).toEqual([String(live.events[0]?.id)]);
    expect(resumed.events.map((e) => [e.action, e.task?.status])).toEqual([
      ['started', 'in_progress'],
      ['submitted', 'review'],
    ]);
    resumed.unsubscribe();
  });

  it('delivers 8 concurrent writers x 50 changes complete, in id order, without duplicates', async () => {
    const client = subscriptionClient(a.owner, () => base);
    const before = await lastAuditId();
    const received = subscribe(client, { project: 'board', lastEventId: String(before) });
    const writers = await Promise.all(
      Array.from({ length: 8 }, () => makeTask(t, a.owner, { projectSlug: 'board' })),
    );
    await Promise.all(
      writers.map(async (task) => {
        for (let i = 1; i <= 49; i++) {
          ok(
            await t.rest('PATCH', `/api/tasks/${task.id}`, {
              token: a.owner.token,
              body: { title: `v${i}` },
            }),
          );
        }
      }),
    );
    await expect.poll(() => received.events.length, { timeout: 60_000 }).toBe(400);
    const ids = received.events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((x, y) => x - y));
    expect(new Set(ids).size).toBe(400);
    const page = ok(await t.rest('GET', `/api/audit?project=board&limit=100`, { token: a.owner.token }));
    expect(ids.at(-1)).toBe(page.items[0].id);
    received.unsubscribe();
  }, 120_000);
});

describe('several instances on one database', () => {
  let second: FastifyInstance;
  let secondBase: string;
  let secondDatabase: Database | null = null;

  beforeAll(async () => {
    // On PostgreSQL a second pool, as another process has; on PGlite the same embedded database.
    secondDatabase = t.db.url ? await createDatabase({ kind: 'postgres', url: t.db.url }) : null;
    second = await buildApp({
      config: { allowedOrigins: [], bodyLimitBytes: 1 << 20, requestTimeoutMs: 15_000, logLevel: 'silent' },
      database: secondDatabase ?? t.db.database,
      verifier: createRemoteVerifier({ jwksUrl: t.jwks.url, issuer: TEST_ISSUER, audience: TEST_AUDIENCE }),
      logger: false,
      events: fast,
    });
    secondBase = await second.listen({ port: 0, host: '127.0.0.1' });
    instances.push({
      close: async () => {
        await second.close();
        await secondDatabase?.close();
      },
    });
  });

  it("delivers each other's events", async () => {
    const onSecond = await stream(a.member, '?project=board', {}, secondBase);
    const onFirst = await stream(a.member, '?project=board');
    const task = await makeTask(t, a.member, { projectSlug: 'board' });
    const viaSecond = await fetch(`${secondBase}/api/tasks/${task.id}/start`, {
      method: 'POST',
      headers: { authorization: `Bearer ${a.member.token}` },
    });
    expect(viaSecond.status).toBe(200);
    await onSecond.waitFor(2);
    await onFirst.waitFor(2);
    expect(onSecond.messages.map((m) => m.id)).toEqual(onFirst.messages.map((m) => m.id));
    expect(onSecond.messages.map((m) => m.event)).toEqual(['created', 'started']);
  });

  it('ends streams on shutdown; the client reconnects to the other instance and resumes without loss', async () => {
    // Instance "first" here is a third app on the same database, so closing it spares the suite's own.
    const thirdDatabase = t.db.url ? await createDatabase({ kind: 'postgres', url: t.db.url }) : null;
    const third = await buildApp({
      config: { allowedOrigins: [], bodyLimitBytes: 1 << 20, requestTimeoutMs: 15_000, logLevel: 'silent' },
      database: thirdDatabase ?? t.db.database,
      verifier: createRemoteVerifier({ jwksUrl: t.jwks.url, issuer: TEST_ISSUER, audience: TEST_AUDIENCE }),
      logger: false,
      events: fast,
    });
    const thirdBase = await third.listen({ port: 0, host: '127.0.0.1' });
    let target = thirdBase;
    const client = subscriptionClient(a.member, () => target);
    const received = subscribe(client, { project: 'board' });
    const rawOnThird = await stream(a.member, '?project=board', {}, thirdBase);
    await expect.poll(() => received.started, { timeout: 15_000 }).toBe(true);
    const task = await makeTask(t, a.member, { projectSlug: 'board' });
    await expect.poll(() => received.events.length, { timeout: 15_000 }).toBe(1);
    target = secondBase;
    const closing = third.close();
    await expect.poll(() => rawOnThird.ended, { timeout: 5_000 }).toBe(true);
    await closing;
    await thirdDatabase?.close();
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: a.member.token, body: {} }));
    ok(await t.rest('POST', `/api/tasks/${task.id}/review`, { token: a.member.token, body: {} }));
    await expect.poll(() => received.events.length, { timeout: 10_000 }).toBe(3);
    expect(received.events.map((e) => e.action)).toEqual(['created', 'started', 'submitted']);
    received.unsubscribe();
  });
});
