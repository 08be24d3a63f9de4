import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, ok, query, type TestActor } from '../helpers/factories.js';

const PROJECT = 'paging';
const SEEDED = 1000;
const LIMIT = 37;
const PRIORITY_RANK = { low: 0, medium: 1, high: 2, critical: 3 } as const;

interface Item {
  id: number;
  priority: keyof typeof PRIORITY_RANK;
  createdAt: string;
  updatedAt: string;
  dueDate: string | null;
  projectSlug: string;
}

type Sort = 'createdAt' | 'updatedAt' | 'priority' | 'dueDate';

let t: TestApp;
let reader: TestActor;
let preexisting: Set<number>;
let inserted = 0;

beforeAll(async () => {
  t = await createTestApp();
  const actors = await makeActors(t, { owner: 'pat', reader: 'rita', stranger: 'sam' });
  reader = actors.reader;
  await makeProject(t, actors.owner, PROJECT, { members: [reader] });
  await makeProject(t, actors.stranger, 'paging-hidden');
  // In bulk: few distinct timestamps (many ties), all four priorities, one due date in five null.
  await query(
    t,
    sql`insert into tasks (title, priority, created_by, project_slug, due_date, created_at, updated_at)
        select 'seed ' || g,
               (array['low','medium','high','critical'])[1 + (g * 7) % 4]::task_priority,
               'pat', ${PROJECT},
               case when g % 5 = 0 then null
                    else timestamptz '2030-01-01T00:00:00Z' + ((g * 13) % 40) * interval '1 hour' end,
               timestamptz '2026-01-01T00:00:00Z' + ((g * 17) % 90) * interval '1 second',
               timestamptz '2026-02-01T00:00:00Z' + ((g * 11) % 60) * interval '1 millisecond'
        from generate_series(1, ${SEEDED}) g`,
  );
  // Tasks the reader may not see, interleaved in every order.
  await query(
    t,
    sql`insert into tasks (title, created_by, project_slug, created_at, updated_at)
        select 'hidden ' || g, 'sam', 'paging-hidden',
               timestamptz '2026-01-01T00:00:00Z' + (g % 90) * interval '1 second',
               timestamptz '2026-02-01T00:00:00Z' + (g % 60) * interval '1 millisecond'
        from generate_series(1, 100) g`,
  );
  const rows = await query<{ id: number }>(t, sql`select id from tasks where project_slug = ${PROJECT}`);
  preexisting = new Set(rows.map((row) => Number(row.id)));
});
afterAll(() => t.close());

/** Inserts a few tasks that tie with, precede and follow existing ones in every order. */
async function insertConcurrently(): Promise<void> {
  inserted += 1;
  const n = inserted;
  await query(
    t,
    sql`insert into tasks (title, priority, created_by, project_slug, due_date, created_at, updated_at)
        select 'late ' || ${n} || '-' || g,
               (array['low','medium','high','critical'])[1 + (g + ${n}) % 4]::task_priority,
               'pat', ${PROJECT},
               case when (g + ${n}) % 3 = 0 then null
                    else timestamptz '2030-01-01T00:00:00Z' + ((g * ${n}) % 42) * interval '1 hour' end,
               timestamptz '2026-01-01T00:00:00Z' + ((g * 31 + ${n}) % 92 - 1) * interval '1 second',
               timestamptz '2026-02-01T00:00:00Z' + ((g * 7 + ${n}) % 62 - 1) * interval '1 millisecond'
        from generate_series(1, 3) g`,
  );
}

function key(item: Item, sort: Sort): number {
  if (sort === 'priority') return PRIORITY_RANK[item.priority];
  const value = item[sort];
  // Null due dates sort as the greatest value: last ascending, first descending.
  return value === null ? Number.POSITIVE_INFINITY : Date.parse(value);
}

function inOrder(previous: Item, next: Item, sort: Sort, ascending: boolean): boolean {
  const a = key(previous, sort);
  const b = key(next, sort);
  if (a === b) return ascending ? previous.id < next.id : previous.id > next.id;
  return ascending ? a < b : a > b;
}

describe(`keyset pagination over ${SEEDED} tasks, limit ${LIMIT}, while tasks are being inserted`, () => {
  for (const sort of ['createdAt', 'updatedAt', 'priority', 'dueDate'] as const) {
    for (const order of ['asc', 'desc'] as const) {
      it(`sort=${sort} order=${order} returns every pre-existing task exactly once, in order`, async () => {
        const seen: Item[] = [];
        let cursor: string | null = null;
        let pages = 0;
        do {
          const url: string = `/api/tasks?sort=${sort}&order=${order}&limit=${LIMIT}${
            cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''
          }`;
          const [response] = await Promise.all([
            t.rest('GET', url, { token: reader.token }),
            insertConcurrently(),
          ]);
          const page = ok<{ items: Item[]; nextCursor: string | null }>(response);
          expect(page.items.length).toBeLessThanOrEqual(LIMIT);
          seen.push(...page.items);
          cursor = page.nextCursor;
          pages += 1;
          expect(pages, 'pagination must terminate').toBeLessThan(200);
        } while (cursor);

        expect(seen.every((item) => item.projectSlug === PROJECT)).toBe(true);
        const ids = seen.map((item) => item.id);
        expect(new Set(ids).size, 'no task is returned twice').toBe(ids.length);
        const missing = [...preexisting].filter((id) => !ids.includes(id));
        expect(missing, 'no pre-existing task is skipped').toEqual([]);
        for (let i = 1; i < seen.length; i += 1) {
          const previous = seen[i - 1] as Item;
          const next = seen[i] as Item;
          expect(inOrder(previous, next, sort, order === 'asc'), `${previous.id} before ${next.id}`).toBe(
            true,
          );
        }
        expect(pages).toBeGreaterThanOrEqual(Math.ceil(SEEDED / LIMIT));
      });
    }
  }

  it('gives the same page for the same cursor on REST and tRPC', async () => {
    const first = ok(
      await t.rest('GET', `/api/tasks?sort=dueDate&order=desc&limit=${LIMIT}`, { token: reader.token }),
    );
    const viaRest = await t.rest(
      'GET',
      `/api/tasks?sort=dueDate&order=desc&limit=${LIMIT}&cursor=${encodeURIComponent(first.nextCursor)}`,
      { token: reader.token },
    );
    const viaTrpc = await t.trpcQuery(
      'tasks.list',
      { sort: 'dueDate', order: 'desc', limit: LIMIT, cursor: first.nextCursor },
      reader.token,
    );
    expect(JSON.stringify(viaTrpc.body.result.data)).toBe(viaRest.raw);
  });

  it('ends with a null nextCursor when the last page is exactly full', async () => {
    // `seed 10`, `seed 100`..`seed 109` and `seed 1000`: twelve tasks.
    const query12 = `/api/tasks?project=${PROJECT}&q=${encodeURIComponent('seed 10')}`;
    const whole = ok(await t.rest('GET', `${query12}&limit=12`, { token: reader.token }));
    expect(whole.items).toHaveLength(12);
    expect(whole.nextCursor).toBeNull();
    const first = ok(await t.rest('GET', `${query12}&limit=6`, { token: reader.token }));
    expect(first.items).toHaveLength(6);
    const second = ok(
      await t.rest('GET', `${query12}&limit=6&cursor=${encodeURIComponent(first.nextCursor)}`, {
        token: reader.token,
      }),
    );
    expect(second.items).toHaveLength(6);
    expect(second.nextCursor).toBeNull();
    expect([...first.items, ...second.items].map((x: Item) => x.id)).toEqual(
      whole.items.map((x: Item) => x.id),
    );
  });
});
