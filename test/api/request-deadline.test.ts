import { type SQL, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';
import { makeActor, makeTask, type TestActor, taskRow } from '../helpers/factories.js';

// A procedure that cannot get the database answers 503 at its deadline, two thirds of
// REQUEST_TIMEOUT_MS: an answer within the time a request has, not a request left hanging.

const REQUEST_TIMEOUT_MS = 1_500;

let t: TestApp;
let alice: TestActor;
beforeAll(async () => {
  t = await createTestApp({ listen: true, requestTimeoutMs: REQUEST_TIMEOUT_MS });
  alice = await makeActor(t, 'deadline-alice');
});
afterAll(() => t.close());

/**
 * Runs `body` while another transaction holds the locks `lock` takes (on PGlite, one connection:
 * the whole database).
 */
async function whileLocked<T>(lock: SQL, body: () => Promise<T>): Promise<T> {
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  let locked: () => void = () => {};
  const isLocked = new Promise<void>((resolve) => {
    locked = resolve;
  });
  const holder = t.db.database.db.transaction(async (tx) => {
    await tx.execute(lock);
    locked();
    await held;
  });
  await isLocked;
  try {
    return await body();
  } finally {
    release();
    await holder;
  }
}

async function timed<T>(run: () => Promise<T>): Promise<{ result: T; ms: number }> {
  const started = performance.now();
  const result = await run();
  return { result, ms: performance.now() - started };
}

describe('with REQUEST_TIMEOUT_MS=1500', () => {
  it('answers a procedure stuck on a locked row 503 before the request timeout', async () => {
    const task = await makeTask(t, alice);
    const retrySafe = { 'idempotency-key': `deadline-start-${task.id}` };
    const { result, ms } = await whileLocked(sql`select id from tasks where id = ${task.id} for update`, () =>
      timed(() => t.rest('POST', `/api/tasks/${task.id}/start`, { token: alice.token, headers: retrySafe })),
    );
    expectErrorBody(result, 503, 'SERVICE_UNAVAILABLE');
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS);
    // A 503 at the deadline does not say the change did not happen: its transaction may still commit
    // once the lock is gone. The retry with the same key answers what it did, once.
    const retried = await t.rest('POST', `/api/tasks/${task.id}/start`, {
      token: alice.token,
      headers: retrySafe,
    });
    expect(retried.status, retried.raw).toBe(200);
    expect(await taskRow(t, task.id)).toMatchObject({ status: 'in_progress', assigned_to: alice.id });
  });

  it('registers a first-time worker under the same deadline: 503 in time while the registry is locked', async () => {
    const token = await t.token('deadline-newcomer');
    const { result, ms } = await whileLocked(sql`lock table workers in exclusive mode`, () =>
      timed(() => t.rest('GET', '/api/workers/me', { token })),
    );
    expectErrorBody(result, 503, 'SERVICE_UNAVAILABLE');
    expect(ms).toBeLessThan(REQUEST_TIMEOUT_MS);
    const again = await t.rest('GET', '/api/workers/me', { token });
    expect(again.status, again.raw).toBe(200);
    expect(again.body).toMatchObject({ id: 'deadline-newcomer', type: 'human' });
  });
});
