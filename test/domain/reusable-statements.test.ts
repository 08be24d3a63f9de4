import {
  and,
  arrayContains,
  asc,
  desc,
  eq,
  gte,
  ilike,
  inArray,
  isNull,
  or,
  sql,
  TransactionRollbackError,
} from 'drizzle-orm';
import type { PgUpdateSetSource } from 'drizzle-orm/pg-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../db/client.js';
import { auditLog, projectMembers, projects, tasks, workers } from '../../db/schema/index.js';
import type { Actor } from '../../server/auth/actor.js';
import * as audit from '../../server/services/audit-service.js';
import type { ServiceContext } from '../../server/services/context.js';
import * as taskService from '../../server/services/tasks/index.js';
import { sweepExpiredLeases } from '../../server/services/tasks/leases.js';
import { lockStatements } from '../../server/services/tasks/subtasks.js';
import { taskVisibleTo } from '../../server/services/visibility.js';
import type { TaskSort } from '../../shared/enums.js';
import { type TaskClaimNextInput, TaskListInput } from '../../shared/schemas/task.js';
import { TASK_ACTIONS, type TaskAction } from '../../shared/workflow.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { rowsOf } from '../helpers/factories.js';

// Statements on the hot paths are built once and run through server/services/reusable-statement.ts,
// which maps rows by a `columns` list given beside the query and fills placeholders by name. Here
// each of them is compared with the plain drizzle query for the same input, written out again, so a
// `columns` list that does not match its query, or a value given to the wrong placeholder, fails.

const user: Actor = { id: 'rs-user', type: 'human', role: 'user', email: null, name: 'User' };
const admin: Actor = { id: 'rs-admin', type: 'human', role: 'admin', email: null, name: 'Admin' };
const other = 'rs-other';
const ROLES = [user, admin];

let t: TestDatabase;
let d: Db;
/** Tasks the statements are compared on, by what they are. */
const ids: Record<string, number> = {};

const ctxOf = (tx: Db, actor: Actor): ServiceContext => ({ tx, actor, requestId: 'reusable-statements' });

/** Runs `run` in a savepoint of `tx` and rolls it back, returning what it returned. */
async function rolledBack<T>(tx: Db, run: (sp: Db) => Promise<T>): Promise<T> {
  let result: T | undefined;
  let ran = false;
  try {
    await tx.transaction(async (sp) => {
      result = await run(sp);
      ran = true;
      sp.rollback();
    });
  } catch (error) {
    if (!(error instanceof TransactionRollbackError)) throw error;
  }
  if (!ran) throw new Error('savepoint did not run');
  return result as T;
}

/**
 * Runs the statement and the plain query each in a savepoint of one transaction (the same `now()`,
 * neither sees the other's change), rolls everything back and returns both results.
 */
async function side(
  statement: (tx: Db) => Promise<unknown>,
  plain: (tx: Db) => Promise<unknown>,
): Promise<[unknown, unknown]> {
  let results: [unknown, unknown] = [undefined, undefined];
  await rolledBack(d, async (tx) => {
    results = [await rolledBack(tx, statement), await rolledBack(tx, plain)];
  });
  return results;
}

beforeAll(async () => {
  t = await createTestDatabase();
  d = t.database.db;
  await d.insert(workers).values([user.id, admin.id, other].map((id) => ({ id, name: id })));
  await d.insert(projects).values([
    { slug: 'rs-mine', name: 'mine', ownerId: other },
    { slug: 'rs-theirs', name: 'theirs', ownerId: other },
  ]);
  await d.insert(projectMembers).values([
    { projectSlug: 'rs-mine', workerId: user.id, role: 'member' },
    { projectSlug: 'rs-mine', workerId: other, role: 'owner' },
    { projectSlug: 'rs-theirs', workerId: other, role: 'owner' },
  ]);
  // Varied enough for every filter and sort to select some rows and leave others, with ties.
  const statuses = ['pending', 'in_progress', 'review', 'completed', 'blocked'] as const;
  const priorities = ['low', 'medium', 'high', 'critical'] as const;
  const rows = await d
    .insert(tasks)
    .values(
      Array.from({ length: 60 }, (_, i) => ({
        title: i % 7 === 0 ? `Fix the 50% _discount_ ${i}` : `task ${i}`,
        description: i % 11 === 0 ? 'mentions the discount' : null,
        status: statuses[i % 5],
        priority: priorities[Math.floor(i / 5) % 4],
        progressPercent: (i * 7) % 101,
        assignedTo: i % 3 === 0 ? null : i % 3 === 1 ? user.id : i % 2 === 0 ? admin.id : other,
        projectSlug: i % 4 === 3 ? null : i % 4 === 2 ? 'rs-theirs' : 'rs-mine',
        labels: i % 2 === 0 ? ['even'] : ['odd', 'x'],
        dueDate: i % 5 === 0 ? null : new Date(Date.UTC(2026, 0, 1 + (i % 9))),
        blockedReason: i % 5 === 4 ? 'seeded' : null,
        createdBy: i % 2 === 0 ? user.id : other,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i % 17)),
        updatedAt: new Date(Date.UTC(2026, 0, 2, 0, 0, i % 13)),
        completedAt: i % 5 === 3 ? new Date(Date.UTC(2026, 0, 3)) : null,
      })),
    )
    .returning({ id: tasks.id });
  const parent = rows[0]?.id as number;
  await d
    .update(tasks)
    .set({ parentId: parent })
    .where(inArray(tasks.id, [rows[5]?.id as number, rows[10]?.id as number, rows[20]?.id as number]));
  ids.parent = parent;
  ids.hidden = rows[2]?.id as number; // in rs-theirs
  ids.mine = rows[1]?.id as number; // in rs-mine
}, 60_000);
afterAll(() => t?.cleanup());

const plainGet = (tx: Db, actor: Actor, id: number) =>
  tx
    .select()
    .from(tasks)
    .where(and(eq(tasks.id, id), taskVisibleTo(actor)));

describe('get by id', () => {
  for (const actor of ROLES) {
    it(`returns the row the plain query returns (${actor.role}), and 404 where it returns none`, async () => {
      for (const id of [ids.mine, ids.hidden, ids.parent] as number[]) {
        const [expected] = await plainGet(d, actor, id);
        if (expected) await expect(taskService.get(ctxOf(d, actor), { id })).resolves.toEqual(expected);
        else await expect(taskService.get(ctxOf(d, actor), { id })).rejects.toThrow(/not found/);
      }
    });
  }
});

const SORT = {
  createdAt: tasks.createdAt,
  updatedAt: tasks.updatedAt,
  priority: tasks.priority,
  dueDate: tasks.dueDate,
} as const;

/** The list as a plain query: every matching row in order (PostgreSQL puts nulls last ascending, first descending). */
function plainList(actor: Actor, query: ReturnType<typeof TaskListInput.parse>) {
  const column = SORT[query.sort as TaskSort];
  const ascending = query.order === 'asc';
  const search = query.q ? `%${query.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%` : null;
  const assignee =
    query.assignedTo === undefined
      ? undefined
      : query.assignedTo === 'none'
        ? isNull(tasks.assignedTo)
        : eq(tasks.assignedTo, query.assignedTo === 'me' ? actor.id : query.assignedTo);
  return d
    .select()
    .from(tasks)
    .where(
      and(
        taskVisibleTo(actor),
        query.status ? inArray(tasks.status, query.status) : undefined,
        query.priority ? inArray(tasks.priority, query.priority) : undefined,
        assignee,
        query.project === undefined ? undefined : eq(tasks.projectSlug, query.project),
        query.parentId === undefined ? undefined : eq(tasks.parentId, query.parentId),
        query.label === undefined ? undefined : arrayContains(tasks.labels, [query.label]),
        search ? or(ilike(tasks.title, search), ilike(tasks.description, search)) : undefined,
        query.updatedSince === undefined ? undefined : gte(tasks.updatedAt, new Date(query.updatedSince)),
      ),
    )
    .orderBy(ascending ? asc(column) : desc(column), ascending ? asc(tasks.id) : desc(tasks.id));
}

const LIST_SHAPES: Record<string, unknown>[] = [
  {},
  { status: ['pending', 'review'] },
  { priority: ['high'], sort: 'priority', order: 'asc' },
  { assignedTo: 'me' },
  { assignedTo: 'none', status: ['pending'] },
  { assignedTo: other },
  { project: 'rs-mine', sort: 'updatedAt' },
  { parentId: 'the parent' },
  { label: 'odd', sort: 'dueDate', order: 'asc' },
  { label: 'even', sort: 'dueDate', order: 'desc' },
  { q: '50% _discount_' },
  { q: 'discount', sort: 'priority', order: 'desc' },
  { updatedSince: '2026-01-02T00:00:06.000+01:00', sort: 'updatedAt', order: 'asc' },
];

describe('the list, one statement per shape', () => {
  for (const actor of ROLES) {
    for (const shape of LIST_SHAPES) {
      it(`${actor.role} ${JSON.stringify(shape)}: every page, through the cursor, is the plain query's`, async () => {
        const input = { ...shape, limit: 7, ...(shape.parentId ? { parentId: ids.parent } : {}) };
        const query = TaskListInput.parse(input);
        const expected = await plainList(actor, query);
        const got = [];
        let cursor: string | undefined;
        do {
          const page = await taskService.list(ctxOf(d, actor), TaskListInput.parse({ ...input, cursor }));
          got.push(...page.items);
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        expect(got.length).toBeGreaterThan(0);
        expect(got).toEqual(expected);
      });
    }
  }
});

describe('the task insert', () => {
  for (const input of [
    { title: 'minimal' },
    {
      title: 'everything',
      description: 'all the fields',
      priority: 'critical' as const,
      projectSlug: 'rs-mine',
      labels: ['a', 'b'],
      dueDate: '2026-05-06T07:08:09.010+02:00',
    },
  ]) {
    it(`returns the row a plain insert of the same values returns: ${input.title}`, async () => {
      const [created, plain] = await side(
        (tx) => taskService.create(ctxOf(tx, user), input),
        (tx) =>
          tx
            .insert(tasks)
            .values({
              title: input.title,
              description: input.description ?? null,
              priority: input.priority ?? 'medium',
              projectSlug: input.projectSlug ?? null,
              labels: input.labels ?? [],
              dueDate: input.dueDate ? new Date(input.dueDate) : null,
              createdBy: user.id,
            })
            .returning()
            .then(([row]) => row),
      );
      expect({ ...(created as object), id: 0 }).toEqual({ ...(plain as object), id: 0 });
    });
  }

  it('checks the project with the visibility of the plain query: a project the caller is not in is 404', async () => {
    for (const [actor, slug] of [
      [user, 'rs-mine'],
      [user, 'rs-theirs'],
      [admin, 'rs-theirs'],
    ] as const) {
      const visible = await d
        .select({ slug: projects.slug })
        .from(projects)
        .where(
          and(
            eq(projects.slug, slug),
            actor.role === 'admin'
              ? undefined
              : inArray(
                  projects.slug,
                  d
                    .select({ slug: projectMembers.projectSlug })
                    .from(projectMembers)
                    .where(eq(projectMembers.workerId, actor.id)),
                ),
          ),
        );
      const created = rolledBack(d, (tx) =>
        taskService.create(ctxOf(tx, actor), { title: 'p', projectSlug: slug }),
      );
      if (visible.length > 0) await expect(created).resolves.toMatchObject({ projectSlug: slug });
      else await expect(created).rejects.toThrow(`Project ${slug} not found`);
    }
  });
});

describe('the audit insert', () => {
  it('writes the row a plain insert of the same values writes', async () => {
    const entry = {
      action: 'updated' as const,
      taskId: ids.mine,
      projectSlug: 'rs-mine',
      context: { a: [1, 'b'] },
    };
    const read = (tx: Db) =>
      tx
        .select()
        .from(auditLog)
        .orderBy(desc(auditLog.id))
        .limit(1)
        .then(([row]) => ({ ...row, id: 0 }));
    const [recorded, plain] = await side(
      async (tx) => {
        await audit.record(ctxOf(tx, user), entry);
        return read(tx);
      },
      async (tx) => {
        await tx.insert(auditLog).values({
          actorId: user.id,
          actorType: user.type,
          requestId: 'reusable-statements',
          ...entry,
        });
        return read(tx);
      },
    );
    expect(recorded).toMatchObject({ actorId: user.id, action: 'updated', context: entry.context });
    expect(recorded).toEqual(plain);
  });
});

/** For each action: the task it starts from (one the user may act on), its input, and what it sets. */
const ACTIONS: Record<
  TaskAction,
  {
    run: (ctx: ServiceContext, input: never) => Promise<unknown>;
    seed: Partial<typeof tasks.$inferInsert> | ((actor: Actor) => Partial<typeof tasks.$inferInsert>);
    input: Record<string, unknown>;
    set: (actor: Actor) => PgUpdateSetSource<typeof tasks>;
  }
> = {
  start: {
    run: taskService.start,
    seed: { status: 'pending' },
    input: {},
    set: (actor) => ({ status: 'in_progress', assignedTo: actor.id }),
  },
  progress: {
    run: taskService.progress,
    seed: { status: 'in_progress', assignedTo: user.id, progressPercent: 10 },
    input: { percent: 45, note: 'noted' },
    set: () => ({ progressPercent: 45 }),
  },
  submitForReview: {
    run: taskService.submitForReview,
    seed: { status: 'in_progress', assignedTo: user.id },
    input: {},
    set: () => ({ status: 'review' }),
  },
  complete: {
    run: taskService.complete,
    seed: { status: 'review', assignedTo: user.id, progressPercent: 80 },
    input: {},
    set: () => ({ status: 'completed', progressPercent: 100, completedAt: sql`now()` }),
  },
  block: {
    run: taskService.block,
    seed: { status: 'pending', assignedTo: user.id },
    input: { reason: 'waiting for review' },
    set: () => ({ status: 'blocked', blockedReason: 'waiting for review' }),
  },
  unblock: {
    run: taskService.unblock,
    seed: { status: 'blocked', assignedTo: user.id, blockedReason: 'was blocked' },
    input: {},
    set: () => ({ status: 'in_progress', blockedReason: null }),
  },
  reopen: {
    run: taskService.reopen,
    seed: { status: 'completed', progressPercent: 100, completedAt: new Date(Date.UTC(2026, 1, 1)) },
    input: {},
    set: () => ({ status: 'pending', completedAt: null }),
  },
  heartbeat: {
    run: taskService.heartbeat,
    // Only the holder renews its lease.
    seed: (actor) => ({
      status: 'in_progress',
      assignedTo: actor.id,
      leaseSeconds: 60,
      leaseExpiresAt: new Date(Date.now() + 5_000),
    }),
    input: { leaseSeconds: 120 },
    set: () => ({ leaseSeconds: 120, leaseExpiresAt: sql`now() + make_interval(secs => 120)` }),
  },
  release: {
    run: taskService.release,
    seed: { status: 'in_progress', assignedTo: user.id, leaseSeconds: 60, leaseExpiresAt: new Date() },
    input: { reason: 'out of time' },
    set: () => ({ status: 'pending', assignedTo: null, leaseSeconds: null, leaseExpiresAt: null }),
  },
};

describe('the workflow action UPDATEs', () => {
  for (const action of TASK_ACTIONS) {
    for (const role of ROLES) {
      it(`${action} (${role.role}) returns the row a plain UPDATE with the same effect returns, and audits the row before`, async () => {
        const spec = ACTIONS[action];
        const actor = role;
        const [seeded] = await d
          .insert(tasks)
          .values({
            title: `${action} ${role.role}`,
            createdBy: user.id,
            projectSlug: 'rs-mine',
            ...(typeof spec.seed === 'function' ? spec.seed(actor) : spec.seed),
          })
          .returning();
        if (!seeded) throw new Error('no seeded row');
        const run = spec.run as (ctx: ServiceContext, input: object) => Promise<unknown>;
        const [acted, plain] = await side(
          async (tx) => {
            const task = await run(ctxOf(tx, actor), { id: seeded.id, ...spec.input });
            const [entry] = await tx.select().from(auditLog).where(eq(auditLog.taskId, seeded.id));
            return { task, context: entry?.context };
          },
          async (tx) => {
            const [task] = await tx
              .update(tasks)
              .set({ ...spec.set(actor), version: sql`${tasks.version} + 1`, updatedAt: sql`now()` })
              .where(eq(tasks.id, seeded.id))
              .returning();
            return { task };
          },
        );
        const { task, context } = acted as { task: unknown; context: Record<string, unknown> };
        expect(task).toEqual((plain as { task: unknown }).task);
        // A heartbeat changes the lease only and is not audited.
        if (action === 'heartbeat') expect(context).toBeUndefined();
        else expect(context).toMatchObject({ from: seeded.status });
        if (action === 'release') expect(context).toMatchObject({ assignee: user.id, reason: 'out of time' });
        if (action === 'progress') expect(context).toMatchObject({ before: 10, percent: 45, note: 'noted' });
        if (action === 'block') expect(context).toMatchObject({ reason: 'waiting for review' });
      });
    }
  }

  it('unblock returns a blocked task nobody holds to pending', async () => {
    const [seeded] = await d
      .insert(tasks)
      .values({ title: 'unheld', createdBy: user.id, projectSlug: 'rs-mine', status: 'blocked' })
      .returning();
    const task = await rolledBack(d, (tx) =>
      taskService.unblock(ctxOf(tx, user), { id: seeded?.id as number }),
    );
    expect(task).toMatchObject({ status: 'pending', assignedTo: null, blockedReason: null });
  });
});

describe('the subtask lock', () => {
  for (const strength of ['update', 'no key update'] as const) {
    for (const actor of ROLES) {
      it(`FOR ${strength.toUpperCase()} (${actor.role}) locks exactly the rows the plain query locks`, async () => {
        for (const id of [ids.mine, ids.hidden] as number[]) {
          const [locked, plain] = await side(
            async (tx) => rowsOf(await lockStatements[strength](actor)(tx, { id, actorId: actor.id })),
            (tx) =>
              tx
                .select({ id: tasks.id })
                .from(tasks)
                .where(and(eq(tasks.id, id), taskVisibleTo(actor)))
                .for(strength),
          );
          expect(locked).toEqual(plain);
        }
      });
    }
  }
});

/** claimNext as one plain query over every task the actor may see, in the queue's order. */
async function plainClaim(tx: Db, actor: Actor, input: TaskClaimNextInput) {
  const [first] = await tx
    .select({ id: tasks.id })
    .from(tasks)
    .where(
      and(
        eq(tasks.status, 'pending'),
        isNull(tasks.assignedTo),
        taskVisibleTo(actor),
        sql`${tasks.requiredCapabilities} <@ coalesce((select capabilities from workers where id = ${actor.id}), '{}')`,
        input.project === undefined ? undefined : eq(tasks.projectSlug, input.project),
        input.labels ? arrayContains(tasks.labels, input.labels) : undefined,
        input.minPriority === undefined ? undefined : gte(tasks.priority, input.minPriority),
        sql`not exists (select 1 from tasks parent where parent.id = ${tasks.parentId} and parent.status = 'blocked')`,
      ),
    )
    .orderBy(
      sql`${tasks.priority} desc nulls last`,
      sql`${tasks.dueDate} asc nulls last`,
      tasks.createdAt,
      tasks.id,
    )
    .limit(1);
  if (!first) return null;
  const [row] = await tx
    .update(tasks)
    .set({
      status: 'in_progress',
      assignedTo: actor.id,
      leaseSeconds: null,
      leaseExpiresAt: null,
      version: sql`${tasks.version} + 1`,
      updatedAt: sql`now()`,
    })
    .where(eq(tasks.id, first.id))
    .returning();
  return row ?? null;
}

const CLAIM_SHAPES: TaskClaimNextInput[] = [
  {},
  { project: 'rs-mine' },
  { project: 'rs-theirs' },
  { labels: ['odd'] },
  { labels: ['odd', 'x'], minPriority: 'medium' },
  { minPriority: 'critical' },
];

describe('the claim, one statement per shape', () => {
  for (const actor of ROLES) {
    for (const input of CLAIM_SHAPES) {
      it(`${actor.role} ${JSON.stringify(input)}: claims the task the plain query over the whole board claims`, async () => {
        let results: [unknown, unknown] = [undefined, undefined];
        await rolledBack(d, async (tx) => {
          // Claimable tasks of every kind the pick must tell apart, beside the seeded ones.
          const [blocked] = await tx
            .insert(tasks)
            .values({ title: 'blocked parent', createdBy: other, projectSlug: 'rs-mine', status: 'blocked' })
            .returning({ id: tasks.id });
          await tx.insert(tasks).values([
            {
              title: 'under a blocked parent',
              createdBy: other,
              projectSlug: 'rs-mine',
              priority: 'critical',
              parentId: blocked?.id,
            },
            {
              title: 'needs x',
              createdBy: other,
              projectSlug: 'rs-mine',
              priority: 'critical',
              requiredCapabilities: ['x'],
            },
            {
              title: 'own, loose',
              createdBy: user.id,
              priority: 'high',
              labels: ['odd'],
              dueDate: new Date(Date.UTC(2026, 0, 2)),
            },
            { title: 'theirs, loose', createdBy: other, priority: 'critical', labels: ['odd', 'x'] },
            { title: 'hidden', createdBy: other, projectSlug: 'rs-theirs', priority: 'critical' },
            {
              title: 'mine, critical, due late',
              createdBy: other,
              projectSlug: 'rs-mine',
              priority: 'critical',
              dueDate: new Date(Date.UTC(2027, 0, 1)),
            },
            {
              title: 'mine, due',
              createdBy: other,
              projectSlug: 'rs-mine',
              priority: 'high',
              labels: ['odd', 'x'],
              dueDate: new Date(Date.UTC(2026, 0, 1)),
            },
          ]);
          results = [
            await rolledBack(tx, (sp) => taskService.claimNext(ctxOf(sp, actor), input)),
            await rolledBack(tx, (sp) => plainClaim(sp, actor, input)),
          ];
        });
        expect(results[0]).toEqual(results[1]);
        if (actor === admin || input.project !== 'rs-theirs') expect(results[0]).not.toBeNull();
      });
    }
  }

  it('claims the task that needs a capability once the worker has it', async () => {
    const claimed = await rolledBack(d, async (tx) => {
      await tx
        .update(workers)
        .set({ capabilities: ['x'] })
        .where(eq(workers.id, user.id));
      await tx.insert(tasks).values({
        title: 'needs x, most urgent',
        createdBy: other,
        projectSlug: 'rs-mine',
        priority: 'critical',
        dueDate: new Date(Date.UTC(2000, 0, 1)),
        requiredCapabilities: ['x'],
      });
      return taskService.claimNext(ctxOf(tx, user), {});
    });
    expect(claimed).toMatchObject({ title: 'needs x, most urgent', assignedTo: user.id });
  });
});

describe('the lease sweep', () => {
  it('returns lapsed tasks to pending, audits each once and says how many', async () => {
    const [swept, rows] = await rolledBack(d, async (tx) => {
      const lapsed = await tx
        .insert(tasks)
        .values(
          [1, 2].map((n) => ({
            title: `lapsed ${n}`,
            createdBy: user.id,
            projectSlug: 'rs-mine',
            status: 'in_progress' as const,
            assignedTo: user.id,
            leaseSeconds: 60,
            leaseExpiresAt: new Date(Date.now() - 60_000),
          })),
        )
        .returning({ id: tasks.id });
      // Other tests leave lapsed tasks of their own: the sweep returns all of them.
      const [due] = await tx
        .select({ n: sql<number>`count(*)::int` })
        .from(tasks)
        .where(and(eq(tasks.status, 'in_progress'), sql`${tasks.leaseExpiresAt} <= now()`));
      const n = await sweepExpiredLeases(tx);
      const ids = lapsed.map((row) => row.id);
      return [
        { n, due: due?.n },
        {
          tasks: await tx.select({ status: tasks.status }).from(tasks).where(inArray(tasks.id, ids)),
          audit: await tx.select().from(auditLog).where(inArray(auditLog.taskId, ids)),
        },
      ] as const;
    });
    expect(swept.n).toBe(swept.due);
    expect(swept.n).toBeGreaterThanOrEqual(2);
    expect(rows.tasks).toEqual([{ status: 'pending' }, { status: 'pending' }]);
    expect(rows.audit.map((row) => [row.action, row.actorId])).toEqual([
      ['lease_expired', 'system'],
      ['lease_expired', 'system'],
    ]);
  });
});
