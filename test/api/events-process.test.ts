import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, type TestActor } from '../helpers/factories.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';
import { SseStream } from '../helpers/sse.js';

// On PostgreSQL the REST event streams are written by a process of their own (EVENT_STREAMS=process):
// the API checks a stream request and hands it over with its connection. What that must not change
// (the events, resume, visibility, caps, the stall cut) is proven by events.test.ts, which runs
// through it on PostgreSQL; here, what is the process's own: its headers, its death, its shutdown.

const fast = { pollMs: 200, pingMs: 100, stallMs: 500, maxStreamsPerActor: 3 };

interface Instance {
  t: TestApp;
  base: string;
  owner: TestActor;
  member: TestActor;
}

const apps: TestApp[] = [];
const streams: SseStream[] = [];

afterEach(async () => {
  for (const s of streams.splice(0)) await s.close();
  for (const t of apps.splice(0)) await t.close();
});

async function instance(maxConnections?: number): Promise<Instance> {
  const t = await createTestApp({
    listen: true,
    events: fast,
    ...(maxConnections ? { maxConnections } : {}),
  });
  apps.push(t);
  const base = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  const a = await makeActors(t, { owner: 'po', member: 'pm' });
  await makeProject(t, a.owner, 'proc', { members: [a.member] });
  return { t, base, owner: a.owner, member: a.member };
}

async function stream(
  i: Instance,
  actor: TestActor,
  headers: Record<string, string> = {},
): Promise<SseStream> {
  const s = await SseStream.open(`${i.base}/api/events?project=proc`, {
    authorization: `Bearer ${actor.token}`,
    ...headers,
  });
  streams.push(s);
  return s;
}

/** The pids of the stream processes the instance started, from its log. */
function streamPids(t: TestApp): number[] {
  return t.logs
    .map((line) => JSON.parse(line) as { msg?: string; pid?: number })
    .filter((line) => line.msg === 'event stream process started')
    .map((line) => line.pid as number);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describePostgresOnly('event streams in a process of their own (PostgreSQL)', () => {
  it("answers from another process with the API's headers, and delivers the changes", async () => {
    const i = await instance();
    const s = await stream(i, i.member, { origin: 'http://localhost:3000', 'x-request-id': 'sse-proc-1' });
    expect(s.response.status).toBe(200);
    expect(s.response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(s.response.headers.get('x-request-id')).toBe('sse-proc-1');
    expect(s.response.headers.get('access-control-allow-origin')).toBe('http://localhost:3000');
    expect(s.response.headers.get('x-content-type-options')).toBe('nosniff');
    const [pid] = streamPids(i.t);
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
    expect(alive(pid as number)).toBe(true);
    const task = await makeTask(i.t, i.owner, { projectSlug: 'proc' });
    await s.waitFor(1);
    expect(s.events[0]).toMatchObject({ action: 'created', task: { id: task.id } });
  });

  it('when the process dies its streams end, and the next stream starts another and resumes without loss', async () => {
    const i = await instance();
    const first = await stream(i, i.member);
    const task = await makeTask(i.t, i.owner, { projectSlug: 'proc' });
    await first.waitFor(1);
    const [pid] = streamPids(i.t);
    process.kill(pid as number, 'SIGKILL');
    await expect.poll(() => first.ended, { timeout: 5_000 }).toBe(true);
    await expect
      .poll(() => i.t.logs.some((line) => line.includes('the stream process exited')), { timeout: 5_000 })
      .toBe(true);
    // Written while no stream process runs: the resumed stream still gets it, and only it.
    ok(await i.t.rest('POST', `/api/tasks/${task.id}/start`, { token: i.owner.token, body: {} }));
    const resumed = await stream(i, i.member, { 'last-event-id': first.messages[0]?.id ?? '' });
    expect(resumed.response.status).toBe(200);
    await resumed.waitFor(1);
    expect(resumed.messages.map((m) => m.event)).toEqual(['started']);
    const pids = streamPids(i.t);
    expect(pids).toHaveLength(2);
    expect(pids[1]).not.toBe(pid);
  });

  it('refuses a stream over the instance cap with 429 and the error body', async () => {
    const i = await instance(3);
    const open = [await stream(i, i.member), await stream(i, i.member), await stream(i, i.owner)];
    expect(open.map((s) => s.response.status)).toEqual([200, 200, 200]);
    const over = await stream(i, i.owner, { 'x-request-id': 'sse-over' });
    expect(over.response.status).toBe(429);
    expect(over.response.headers.get('x-request-id')).toBe('sse-over');
    expect(await over.response.json()).toEqual({
      error: 'At most 3 open event streams on this server',
      code: 'TOO_MANY_REQUESTS',
      status_code: 429,
      requestId: 'sse-over',
    });
  });

  it('ends its streams and exits when the app closes', async () => {
    const i = await instance();
    const s = await stream(i, i.member);
    const [pid] = streamPids(i.t);
    apps.splice(apps.indexOf(i.t), 1);
    await i.t.close();
    await expect.poll(() => s.ended, { timeout: 2_000 }).toBe(true);
    expect(alive(pid as number)).toBe(false);
  });
});
