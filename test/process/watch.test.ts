import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, type TestActor } from '../helpers/factories.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let t: TestApp;
let url: string;
let alice: TestActor;
const children: ChildProcess[] = [];

beforeAll(async () => {
  t = await createTestApp({ listen: true });
  url = String(t.app.listeningOrigin);
  ({ alice } = await makeActors(t, { alice: 'alice' }));
  await makeProject(t, alice, 'board');
});
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await t.close();
});

/** `taskflow watch …` as a child process, its stdout lines collected as they come. */
function watch(args: string[]) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'server/cli/taskflow.ts', 'watch', ...args], {
    cwd: ROOT,
    env: { ...process.env, TASKFLOW_URL: url, TASKFLOW_TOKEN: alice.token },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  let buffer = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffer += chunk.toString();
    const parts = buffer.split('\n');
    buffer = parts.pop() ?? '';
    lines.push(...parts);
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, lines, exited };
}

async function lastEventId(): Promise<number> {
  const page = ok(await t.rest('GET', '/api/audit?limit=1', { token: alice.token }));
  return page.items[0]?.id ?? 0;
}

describe('taskflow watch', () => {
  it('prints each event as one JSON line with --json, from after --after, and exits 0 on Ctrl-C', async () => {
    const after = await lastEventId();
    const task = await makeTask(t, alice, { projectSlug: 'board', title: 'watched' });
    ok(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: alice.token, body: {} }));
    await makeTask(t, alice, { title: 'elsewhere' });
    const run = watch(['--json', '--project', 'board', '--after', String(after)]);
    await expect.poll(() => run.lines.length, { timeout: 30_000 }).toBe(2);
    const events = run.lines.map((line) => JSON.parse(line));
    expect(events.map((e) => [e.action, e.taskId, e.task.status])).toEqual([
      ['created', task.id, 'pending'],
      ['started', task.id, 'in_progress'],
    ]);
    ok(await t.rest('POST', `/api/tasks/${task.id}/review`, { token: alice.token, body: {} }));
    await expect.poll(() => run.lines.length, { timeout: 10_000 }).toBe(3);
    expect(JSON.parse(run.lines[2] ?? '{}')).toMatchObject({
      action: 'submitted',
      task: { status: 'review' },
    });
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  }, 60_000);

  it('prints one readable line per event without --json', async () => {
    const after = await lastEventId();
    const task = await makeTask(t, alice, { projectSlug: 'board', title: 'Write the notes' });
    const run = watch(['--task', String(task.id), '--after', String(after)]);
    await expect.poll(() => run.lines.length, { timeout: 30_000 }).toBe(1);
    expect(run.lines[0]).toMatch(
      new RegExp(
        `^#\\d+ \\S+ created by alice task ${task.id} \\[pending 0%\\] Write the notes \\(board\\)$`,
      ),
    );
    run.child.kill('SIGINT');
    expect(await run.exited).toBe(0);
  }, 60_000);
});
