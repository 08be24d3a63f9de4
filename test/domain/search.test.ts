import { and, desc, eq, ilike, or } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Db } from '../../db/client.js';
import { projectMembers, projects, tasks, workers } from '../../db/schema/index.js';
import type { Actor } from '../../server/auth/actor.js';
import * as taskService from '../../server/services/tasks/index.js';
import { taskVisibleTo } from '../../server/services/visibility.js';
import { TaskListInput } from '../../shared/schemas/task.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// A member's `q` search reads its candidates from the search keys (migration 0010: visibility tags ×
// three-character pieces of lower(title) and lower(description)). The keys only narrow the search:
// here every answer, page by page, is the plain query's (visibility and ILIKE over every row), for
// texts in several scripts and cases, pieces across spaces and punctuation, queries shorter than a
// piece, and again after the edits that change a task's keys (text, project, holder).

const actor = (id: string, role: Actor['role'] = 'user'): Actor => ({
  id,
  type: 'human',
  role,
  email: null,
  name: id,
});
const ana = actor('se-ana');
const bo = actor('se-bo');
const cy = actor('se-cy');
const root = actor('se-root', 'admin');
const ACTORS = [ana, bo, cy, root];

let t: TestDatabase;
let d: Db;
const ids: Record<string, number> = {};

const LONG = `${'lorem ipsum dolor '.repeat(300)}the needle at the end`;

beforeAll(async () => {
  t = await createTestDatabase();
  d = t.database.db;
  await d.insert(workers).values(ACTORS.map((a) => ({ id: a.id, name: a.id })));
  await d.insert(projects).values([
    { slug: 'se-a', name: 'a', ownerId: ana.id },
    { slug: 'se-b', name: 'b', ownerId: bo.id },
  ]);
  await d.insert(projectMembers).values([
    { projectSlug: 'se-a', workerId: ana.id, role: 'owner' },
    { projectSlug: 'se-b', workerId: bo.id, role: 'owner' },
  ]);
  const rows: {
    key: string;
    title: string;
    description?: string | null;
    projectSlug?: string;
    createdBy: string;
    assignedTo?: string;
  }[] = [
    { key: 'umlaut', title: 'Überweisung prüfen', projectSlug: 'se-a', createdBy: ana.id },
    {
      key: 'shout',
      title: 'ÄRGER im Büro',
      description: 'Straße sperren',
      projectSlug: 'se-b',
      createdBy: bo.id,
    },
    { key: 'percent', title: '100% fix_me now', projectSlug: 'se-a', createdBy: ana.id },
    {
      key: 'emoji',
      title: 'Rocket',
      description: '🚀 launch at dawn',
      projectSlug: 'se-b',
      createdBy: bo.id,
    },
    { key: 'short', title: 'ab', createdBy: ana.id },
    { key: 'x', title: 'x', description: 'ab', createdBy: bo.id, assignedTo: cy.id },
    { key: 'long', title: 'Long one', description: LONG, projectSlug: 'se-a', createdBy: ana.id },
    { key: 'looseBo', title: 'Task for the needle', createdBy: bo.id },
    {
      key: 'looseHeld',
      title: 'Task held by Ana',
      description: 'über alles',
      createdBy: bo.id,
      assignedTo: ana.id,
    },
    { key: 'cased', title: 'TASK IN CAPS', projectSlug: 'se-b', createdBy: bo.id },
  ];
  for (const [i, { key, ...row }] of rows.entries()) {
    const [created] = await d
      .insert(tasks)
      .values({ ...row, createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, i % 4)) })
      .returning({ id: tasks.id });
    ids[key] = created?.id as number;
  }
}, 60_000);
afterAll(() => t?.cleanup());

/** The plain answer: every task the actor may see whose title or description ILIKE-contains q. */
function plain(who: Actor, q: string) {
  const pattern = `%${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
  return d
    .select()
    .from(tasks)
    .where(and(taskVisibleTo(who), or(ilike(tasks.title, pattern), ilike(tasks.description, pattern))))
    .orderBy(desc(tasks.createdAt), desc(tasks.id));
}

/** The service's answer, page by page (two to a page, so the cursor is crossed). */
async function searched(who: Actor, q: string) {
  const got = [];
  let cursor: string | undefined;
  do {
    const page = await taskService.list(
      { tx: d, actor: who, requestId: 'search' },
      TaskListInput.parse({ q, limit: 2, cursor }),
    );
    got.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return got;
}

const QUERIES = [
  'über',
  'ÜBER',
  'ärger',
  'straße',
  'STRASSE',
  '100%',
  'fix_',
  '🚀 la',
  'launch',
  'ab',
  'a',
  'needle',
  'e n',
  'task',
  'TaSk In',
  'zzz',
];

async function expectPlain() {
  let found = 0;
  for (const who of ACTORS) {
    for (const q of QUERIES) {
      const expected = await plain(who, q);
      found += expected.length;
      expect(await searched(who, q), `${who.id} q=${JSON.stringify(q)}`).toEqual(expected);
    }
  }
  return found;
}

describe('the q search', () => {
  it('answers what the plain query answers, for every actor and query', async () => {
    expect(await expectPlain()).toBeGreaterThan(20);
    // Spot checks that the comparison is about something.
    expect((await searched(ana, 'ÜBER')).map((r) => r.id).sort()).toEqual([ids.umlaut, ids.looseHeld].sort());
    expect((await searched(cy, 'ab')).map((r) => r.id)).toEqual([ids.x]);
    expect(await searched(cy, 'needle')).toEqual([]);
    expect((await searched(ana, 'the needle at')).map((r) => r.id)).toEqual([ids.long]);
  });

  it('still does after the edits that change a task’s keys: text, project and holder', async () => {
    await d
      .update(tasks)
      .set({ title: 'Zebra crossing' })
      .where(eq(tasks.id, ids.percent as number));
    await d
      .update(tasks)
      .set({ projectSlug: 'se-a' })
      .where(eq(tasks.id, ids.shout as number));
    await d
      .update(tasks)
      .set({ assignedTo: cy.id })
      .where(eq(tasks.id, ids.looseBo as number));
    await d
      .update(tasks)
      .set({ assignedTo: null })
      .where(eq(tasks.id, ids.looseHeld as number));
    await d
      .update(tasks)
      .set({ projectSlug: null })
      .where(eq(tasks.id, ids.cased as number));
    QUERIES.push('zebra');
    try {
      await expectPlain();
    } finally {
      QUERIES.pop();
    }
    expect((await searched(ana, 'ärger')).map((r) => r.id)).toEqual([ids.shout]);
    expect((await searched(cy, 'needle')).map((r) => r.id)).toEqual([ids.looseBo]);
    expect(await searched(ana, 'held by')).toEqual([]);
    expect((await searched(bo, 'caps')).map((r) => r.id)).toEqual([ids.cased]);
  });
});
