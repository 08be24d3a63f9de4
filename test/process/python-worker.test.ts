import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { runProcess } from '../helpers/run-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER = 'test/fixtures/agent-worker/worker.py';
const TASKS = 200;

let t: TestApp;
let url: string;

beforeAll(async () => {
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await t?.close();
});

describe('the README’s Python worker loop', () => {
  it('is the file this test runs', () => {
    const readme = readFileSync(`${ROOT}README.md`, 'utf8');
    const script = readFileSync(`${ROOT}${WORKER}`, 'utf8');
    expect(readme).toContain(`\`\`\`python\n${script}\`\`\``);
  });

  it(`drains ${TASKS} tasks with two copies of one agent side by side: each task done once`, async () => {
    const admin = await t.token('root', { role: 'admin' });
    const owner = await t.token('olga');
    const agent = '@worker';
    const registered = await t.rest('POST', '/api/workers', {
      token: admin,
      body: { id: agent, name: 'Worker' },
    });
    expect(registered.status, registered.raw).toBe(201);
    const project = await t.rest('POST', '/api/projects', {
      token: owner,
      body: { slug: 'queue', name: 'Queue' },
    });
    expect(project.status, project.raw).toBe(201);
    const added = await t.rest('PUT', `/api/projects/queue/members/${agent}`, {
      token: owner,
      body: { role: 'member' },
    });
    expect(added.status, added.raw).toBe(200);
    const priorities = ['low', 'medium', 'high', 'critical'] as const;
    const created: number[] = [];
    for (let i = 0; i < TASKS; i++) {
      const task = await t.rest('POST', '/api/tasks', {
        token: owner,
        body: { title: `Job ${i}`, projectSlug: 'queue', priority: priorities[i % 4] },
      });
      expect(task.status, task.raw).toBe(201);
      created.push(task.body.id);
    }

    // Two replicas of one agent; the work is a command that prints the id of the task it was given.
    const token = await t.token(agent);
    const handler = ['python3', '-c', 'import json, sys; print(json.load(sys.stdin)["id"])'];
    const runs = await Promise.all(
      [1, 2].map(() =>
        runProcess('python3', [WORKER, ...handler], {
          cwd: ROOT,
          env: { TASKFLOW_URL: url, TASKFLOW_TOKEN: token },
        }),
      ),
    );
    const doneBy = runs.map((run) => {
      expect(run.code, run.stderr).toBe(0);
      return run.stdout.trimEnd().split('\n').filter(Boolean).map(Number);
    });
    const all = doneBy.flat();
    expect(all).toHaveLength(TASKS);
    expect(new Set(all)).toEqual(new Set(created));
    // Both took a share (neither starved), and the log agrees: one start and one completion per task.
    for (const share of doneBy) expect(share.length).toBeGreaterThan(0);
    const actions: string[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `project=queue&action=started&action=completed&limit=100${cursor ? `&cursor=${cursor}` : ''}`;
      const page = await t.rest('GET', `/api/audit?${query}`, { token: admin });
      expect(page.status, page.raw).toBe(200);
      actions.push(
        ...page.body.items.map(
          (entry: { action: string; taskId: number }) => `${entry.action}:${entry.taskId}`,
        ),
      );
      cursor = page.body.nextCursor;
    } while (cursor);
    expect(actions).toHaveLength(2 * TASKS);
    expect(new Set(actions).size).toBe(2 * TASKS);
  }, 180_000);
});
