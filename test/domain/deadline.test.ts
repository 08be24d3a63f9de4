import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../../server/auth/actor.js';
import { appRouter } from '../../server/routers/index.js';
import { WorkerRegistry } from '../../server/services/worker-service.js';
import { createContextInner } from '../../server/trpc/context.js';
import { createCallerFactory } from '../../server/trpc/init.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

const alice: Actor = { id: 'deadline-alice', type: 'human', role: 'user', email: null, name: 'Alice' };
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(() => db.cleanup());

const callerFor = (deadlineMs: number) =>
  createCallerFactory(appRouter)(
    createContextInner({
      database: db.database,
      registry: new WorkerRegistry(),
      actor: alice,
      requestId: 'r',
      deadlineMs,
    }),
  );

describe('a procedure that cannot get the database in time', () => {
  it('answers SERVICE_UNAVAILABLE at its deadline instead of waiting for a locked row', async () => {
    const task = await callerFor(10_000).tasks.create({ title: 'locked elsewhere' });
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let locked: () => void = () => {};
    const isLocked = new Promise<void>((resolve) => {
      locked = resolve;
    });
    // Another transaction holds the row (on PGlite: the whole database) until released.
    const holder = db.database.db.transaction(async (tx) => {
      await tx.execute(sql`select id from tasks where id = ${task.id} for update`);
      locked();
      await held;
    });
    await isLocked;
    const started = performance.now();
    const idempotencyKey = `deadline-start-${task.id}`;
    await expect(callerFor(500).tasks.start({ id: task.id, idempotencyKey })).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
    });
    expect(performance.now() - started).toBeLessThan(3_000);
    release();
    await holder;
    // Once the lock is gone the call goes through; the one cut at its deadline may have committed
    // meanwhile, so the retry carries its key and gets its answer.
    await expect(callerFor(10_000).tasks.start({ id: task.id, idempotencyKey })).resolves.toMatchObject({
      status: 'in_progress',
    });
  });
});
