import { TRPCError } from '@trpc/server';
import { and, inArray } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectMembers, projects, tasks, workers } from '../../db/schema/index.js';
import type { Actor } from '../../server/auth/actor.js';
import { appRouter } from '../../server/routers/index.js';
import { permitted } from '../../server/services/tasks/permissions.js';
import { taskVisibleTo } from '../../server/services/visibility.js';
import { WorkerRegistry } from '../../server/services/worker-service.js';
import { createContextInner } from '../../server/trpc/context.js';
import { createCallerFactory } from '../../server/trpc/init.js';
import { TASK_STATUSES, type TaskStatus } from '../../shared/enums.js';
import {
  actionsFrom,
  mayPerform,
  nextStatus,
  PERMISSIONS,
  TASK_ACTIONS,
  TASK_OPERATIONS,
  type TaskOperation,
  type WorkflowActor,
  type WorkflowTask,
} from '../../shared/workflow.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

// The permission table and the workflow are written once, in shared/workflow.ts, and shipped to
// clients; the server enforces them in SQL. These tests walk every status × relation × operation on
// a real database and fail where the server and the shared functions disagree.

const PROJECT = 'permissions';

/** One actor per relation to the tasks below (each also sees them: members of the project, or admin). */
const KINDS = {
  assignee: 'perm-assignee',
  creator: 'perm-creator',
  projectOwner: 'perm-owner',
  member: 'perm-member',
  admin: 'perm-admin',
} as const;
type Kind = keyof typeof KINDS;

const actorOf = (kind: Kind): Actor => ({
  id: KINDS[kind],
  type: 'human',
  role: kind === 'admin' ? 'admin' : 'user',
  email: null,
  name: kind,
});
const whoOf = (kind: Kind): WorkflowActor => ({
  id: KINDS[kind],
  role: kind === 'admin' ? 'admin' : 'user',
  isProjectOwner: kind === 'projectOwner',
});

/** Every status, held by the assignee or by nobody. */
const SHAPES: WorkflowTask[] = TASK_STATUSES.flatMap((status) => [
  { status, assignedTo: KINDS.assignee, createdBy: KINDS.creator },
  { status, assignedTo: null, createdBy: KINDS.creator },
]);
const describeTask = (task: WorkflowTask) =>
  `${task.status} task ${task.assignedTo ? 'held by the assignee' : 'nobody holds'}`;

let db: TestDatabase;

async function seed(shapes: WorkflowTask[]): Promise<number[]> {
  const rows = await db.database.db
    .insert(tasks)
    .values(
      shapes.map((shape) => ({
        title: `${shape.status} ${shape.assignedTo ?? 'unassigned'}`,
        status: shape.status,
        assignedTo: shape.assignedTo,
        createdBy: shape.createdBy,
        projectSlug: PROJECT,
        blockedReason: shape.status === 'blocked' ? 'seeded' : null,
        completedAt: shape.status === 'completed' ? new Date() : null,
      })),
    )
    .returning({ id: tasks.id });
  return rows.map((row) => row.id);
}

beforeAll(async () => {
  db = await createTestDatabase();
  const d = db.database.db;
  await d.insert(workers).values(Object.values(KINDS).map((id) => ({ id, name: id })));
  await d.insert(projects).values({ slug: PROJECT, name: PROJECT, ownerId: KINDS.projectOwner });
  await d.insert(projectMembers).values([
    { projectSlug: PROJECT, workerId: KINDS.projectOwner, role: 'owner' },
    ...(['assignee', 'creator', 'member'] as const).map((kind) => ({
      projectSlug: PROJECT,
      workerId: KINDS[kind],
      role: 'member' as const,
    })),
  ]);
});
afterAll(() => db?.cleanup());

describe('the SQL of each permission against mayPerform, for every status, relation and operation', () => {
  let ids: number[] = [];
  beforeAll(async () => {
    ids = await seed(SHAPES);
  });

  for (const kind of Object.keys(KINDS) as Kind[]) {
    for (const operation of TASK_OPERATIONS) {
      it(`${kind} → ${operation}`, async () => {
        const actor = actorOf(kind);
        const rows = await db.database.db
          .select({ id: tasks.id })
          .from(tasks)
          .where(
            and(
              inArray(tasks.id, ids),
              taskVisibleTo(actor),
              permitted(operation, actor.role === 'admin', actor.id),
            ),
          );
        const allowedBySql = new Set(rows.map((row) => row.id));
        const disagreements = SHAPES.flatMap((shape, i) => {
          const shared = mayPerform(operation, shape, whoOf(kind));
          const server = allowedBySql.has(ids[i] as number);
          return shared === server ? [] : [`${describeTask(shape)}: shared ${shared}, SQL ${server}`];
        });
        expect(disagreements).toEqual([]);
      });
    }
  }
});

/** A success (with the status it led to, for a workflow action) or the refusal's code. */
type Outcome = { ok: true; status?: TaskStatus } | { ok: false; code: 'CONFLICT' | 'FORBIDDEN' };

/** What the shared functions say an operation by `kind` on `task` comes to. */
function sharedOutcome(operation: TaskOperation, task: WorkflowTask, kind: Kind): Outcome {
  const who = whoOf(kind);
  const refused = (code: 'CONFLICT' | 'FORBIDDEN'): Outcome => ({ ok: false, code });
  switch (operation) {
    case 'edit':
    case 'delete':
      return mayPerform(operation, task, who) ? { ok: true } : refused('FORBIDDEN');
    case 'assign':
      if (!mayPerform(operation, task, who)) return refused('FORBIDDEN');
      return task.status === 'completed' ? refused('CONFLICT') : { ok: true };
    default: {
      if (!actionsFrom(task.status).includes(operation)) return refused('CONFLICT');
      if (!mayPerform(operation, task, who)) return refused('FORBIDDEN');
      return { ok: true, status: nextStatus(task, operation) ?? task.status };
    }
  }
}

const INPUT: Partial<Record<TaskOperation, Record<string, unknown>>> = {
  edit: { title: 'edited' },
  progress: { percent: 40 },
  block: { reason: 'waiting' },
};

/** Performs the operation through the procedures, as any surface would. */
async function serverOutcome(operation: TaskOperation, id: number, kind: Kind): Promise<Outcome> {
  const caller = createCallerFactory(appRouter)(
    createContextInner({
      database: db.database,
      registry: new WorkerRegistry(),
      actor: actorOf(kind),
      requestId: 'permissions-test',
    }),
  );
  const input = { id, ...INPUT[operation] };
  try {
    if (operation === 'delete') await caller.tasks.delete(input);
    else if (operation === 'edit') await caller.tasks.update(input);
    else if (operation === 'assign') await caller.tasks.assign({ id, workerId: KINDS.member });
    else {
      const task = await (caller.tasks[operation] as (input: unknown) => Promise<{ status: TaskStatus }>)(
        input,
      );
      return { ok: true, status: task.status };
    }
    return { ok: true };
  } catch (error) {
    if (error instanceof TRPCError && (error.code === 'CONFLICT' || error.code === 'FORBIDDEN')) {
      return { ok: false, code: error.code };
    }
    throw error;
  }
}

describe('what the server does against the shared workflow, for every status, relation and operation', () => {
  const cases = (Object.keys(KINDS) as Kind[]).flatMap((kind) =>
    TASK_OPERATIONS.flatMap((operation) => SHAPES.map((task) => ({ kind, operation, task, id: 0 }))),
  );
  beforeAll(async () => {
    const ids = await seed(cases.map((c) => c.task));
    cases.forEach((c, i) => {
      c.id = ids[i] as number;
    });
  });

  for (const kind of Object.keys(KINDS) as Kind[]) {
    for (const operation of TASK_OPERATIONS) {
      const mine = cases.filter((c) => c.kind === kind && c.operation === operation);
      it(`${kind} → ${operation}: ${TASK_ACTIONS.includes(operation as never) ? 'legality, permission and nextStatus' : 'permission'}`, async () => {
        const disagreements: string[] = [];
        for (const c of mine) {
          const shared = sharedOutcome(operation, c.task, kind);
          const server = await serverOutcome(operation, c.id, kind);
          if (JSON.stringify(server) !== JSON.stringify(shared)) {
            disagreements.push(
              `${describeTask(c.task)}: shared ${JSON.stringify(shared)}, server ${JSON.stringify(server)}`,
            );
          }
        }
        expect(disagreements).toEqual([]);
      });
    }
  }
});

// The walks above prove the server does what the table says; this pins what the table says for the
// operations the workflow oracle (test/api/workflow.test.ts) does not cover, so that widening who
// may delete a task is a deliberate change here too.
describe('who may edit, assign and delete', () => {
  it('is the creator, the assignee, a project owner or an admin for edit and assign; the creator or an admin for delete', () => {
    expect({ edit: PERMISSIONS.edit, assign: PERMISSIONS.assign, delete: PERMISSIONS.delete }).toEqual({
      edit: ['creator', 'assignee', 'projectOwner', 'admin'],
      assign: ['creator', 'assignee', 'projectOwner', 'admin'],
      delete: ['creator', 'admin'],
    });
  });
});
