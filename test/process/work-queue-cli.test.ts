import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { auditRows, ok } from '../helpers/factories.js';
import { type Run, runProcess } from '../helpers/run-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

let t: TestApp;
let url: string;
let owner: string;
let agent: string;
let dir: string;

/** The real CLI, from source, in a child process (the server answering it lives in this process). */
function taskflow(args: string[]): Promise<Run> {
  return runProcess(process.execPath, ['--import', 'tsx', join(ROOT, 'server/cli/taskflow.ts'), ...args], {
    cwd: ROOT,
    env: { TASKFLOW_URL: url, TASKFLOW_TOKEN: agent, NO_COLOR: '1' },
  });
}

const createTask = async (title: string, label: string) =>
  ok(
    await t.rest('POST', '/api/tasks', {
      token: owner,
      body: { title, projectSlug: 'cli-queue', labels: [label] },
    }),
    201,
  );

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'taskflow-work-'));
  // Reads the task from stdin, notes its id and exits with the code it is given, after a pause.
  writeFileSync(
    join(dir, 'script.mjs'),
    `let input = '';
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const task = JSON.parse(input);
  require_ok(task.id === Number(process.env.TASKFLOW_TASK_ID));
  setTimeout(() => {
    process.stdout.write('worked on ' + task.id + '\\n');
    process.exit(Number(process.argv[2]));
  }, Number(process.argv[3] ?? 0));
});
function require_ok(value) { if (!value) process.exit(99); }
`,
  );
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  owner = await t.token('queue-cli-owner');
  const admin = await t.token('queue-cli-admin', { role: 'admin' });
  ok(await t.rest('POST', '/api/workers', { token: admin, body: { id: '@cli-bot', name: 'CLI bot' } }), 201);
  agent = await t.token('@cli-bot');
  ok(
    await t.rest('POST', '/api/projects', { token: owner, body: { slug: 'cli-queue', name: 'Queue' } }),
    201,
  );
  ok(
    await t.rest('PUT', '/api/projects/cli-queue/members/@cli-bot', {
      token: owner,
      body: { role: 'member' },
    }),
  );
});

afterAll(async () => {
  await t?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('taskflow work', () => {
  it('completes the task when the command exits 0 and releases it with the reason when it exits 1', async () => {
    const good = await createTask('works', 'work-ok');
    const run = await taskflow(['work', '--label', 'work-ok', '--', 'node', join(dir, 'script.mjs'), '0']);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`worked on ${good.id}`);
    expect(ok(await t.rest('GET', `/api/tasks/${good.id}`, { token: owner }))).toMatchObject({
      status: 'completed',
      assignedTo: '@cli-bot',
    });

    const bad = await createTask('fails', 'work-fail');
    const failed = await taskflow([
      'work',
      '--label',
      'work-fail',
      '--',
      'node',
      join(dir, 'script.mjs'),
      '1',
    ]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(new RegExp(`task ${bad.id} released: .* exited with code 1`));
    expect(ok(await t.rest('GET', `/api/tasks/${bad.id}`, { token: owner }))).toMatchObject({
      status: 'pending',
      assignedTo: null,
    });
    const released = (await auditRows(t, { taskId: bad.id })).at(-1);
    expect(released).toMatchObject({ action: 'released', actorId: '@cli-bot' });
    expect(String(released?.context.reason)).toMatch(/exited with code 1$/);

    const none = await taskflow([
      'work',
      '--label',
      'work-none',
      '--json',
      '--',
      'node',
      join(dir, 'script.mjs'),
      '0',
    ]);
    expect(none.code, none.stderr).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual({ task: null });
  });

  it('keeps the claim through heartbeats while the command runs longer than the lease', async () => {
    const long = await createTask('takes a while', 'work-long');
    const run = await taskflow([
      'work',
      '--label',
      'work-long',
      '--lease',
      '10',
      '--',
      'node',
      join(dir, 'script.mjs'),
      '0',
      '12500',
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(ok(await t.rest('GET', `/api/tasks/${long.id}`, { token: owner })).status).toBe('completed');
    const actions = (await auditRows(t, { taskId: long.id })).map((row) => row.action);
    expect(actions).toEqual(['created', 'started', 'completed']);
  }, 40_000);

  it('next, heartbeat and release from the shell', async () => {
    const task = await createTask('by hand', 'by-hand');
    const next = await taskflow(['next', '--label', 'by-hand', '--json']);
    expect(next.code, next.stderr).toBe(0);
    expect(JSON.parse(next.stdout).task).toMatchObject({ id: task.id, assignedTo: '@cli-bot' });
    const beat = await taskflow(['heartbeat', String(task.id), '--lease', '60', '--json']);
    expect(beat.code, beat.stderr).toBe(0);
    expect(new Date(JSON.parse(beat.stdout).leaseExpiresAt).getTime()).toBeGreaterThan(Date.now() + 50_000);
    const release = await taskflow(['release', String(task.id), '--reason', 'not today']);
    expect(release.code, release.stderr).toBe(0);
    expect(release.stdout).toMatch(new RegExp(`Task ${task.id} is pending`));
    const empty = await taskflow(['next', '--label', 'nothing-here']);
    expect(empty.stdout.trim()).toBe('Nothing to claim.');
  });
});
