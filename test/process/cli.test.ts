import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { type Run, runProcess } from '../helpers/run-process.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = 'server/cli/taskflow.ts';

/**
 * Compiles the CLI's run-time import graph with the project's compiler options, as `npm run build`
 * would, into a temporary directory whose node_modules is the repository's. A process then starts
 * in a fraction of tsx's time, which matters over twenty runs on a busy machine. The files it
 * reaches are returned: type-only imports are gone, so they are exactly what the CLI loads.
 */
function buildCli(outDir: string): string[] {
  const { options } = ts.convertCompilerOptionsFromJson(
    JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')).compilerOptions,
    ROOT,
  );
  const reached: string[] = [];
  const pending = [join(ROOT, CLI)];
  while (pending.length > 0) {
    const file = pending.pop() as string;
    const rel = relative(ROOT, file);
    if (reached.includes(rel)) continue;
    reached.push(rel);
    const output = ts.transpileModule(readFileSync(file, 'utf8'), {
      // ESM, as NodeNext makes it for a `"type": "module"` package (transpileModule sees no package.json).
      compilerOptions: { ...options, module: ts.ModuleKind.ESNext },
      fileName: file,
    });
    const target = join(outDir, rel.replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, output.outputText);
    for (const { fileName } of ts.preProcessFile(output.outputText, true, true).importedFiles) {
      if (fileName.startsWith('.')) pending.push(resolve(dirname(file), fileName.replace(/\.js$/, '.ts')));
    }
  }
  writeFileSync(join(outDir, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  symlinkSync(join(ROOT, 'node_modules'), join(outDir, 'node_modules'), 'dir');
  return reached.sort();
}

let built: string;
let reachedFiles: string[];

let t: TestApp;
let url: string;
let alice: string;
let bob: string;

/** Runs the real CLI in a child process (async: the server answering it lives in this process). */
function taskflow(args: string[], env: Record<string, string | undefined> = {}): Promise<Run> {
  return runProcess(process.execPath, [join(built, CLI.replace(/\.ts$/, '.js')), ...args], {
    cwd: built,
    env: { TASKFLOW_URL: url, TASKFLOW_TOKEN: alice, NO_COLOR: '1', ...env },
  });
}

const as = (token: string) => ({ TASKFLOW_TOKEN: token });

function json<T = any>(run: Run): T {
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as T;
}

/** One line on stderr, nothing on stdout, the given exit code. */
function expectFailure(run: Run, exitCode: number, pattern: RegExp): void {
  expect(run.code, `${run.stdout}${run.stderr}`).toBe(exitCode);
  expect(run.stdout).toBe('');
  expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(pattern);
  expect(run.stderr).not.toMatch(/\bat .+\.(ts|js):\d+/);
}

beforeAll(async () => {
  built = mkdtempSync(join(tmpdir(), 'taskflow-cli-'));
  reachedFiles = buildCli(built);
  t = await createTestApp();
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  alice = await t.token('alice');
  bob = await t.token('bob');
  expect((await t.rest('GET', '/api/workers/me', { token: bob })).status).toBe(200);
  const project = await t.rest('POST', '/api/projects', {
    token: alice,
    body: { slug: 'docs', name: 'Docs' },
  });
  expect(project.status, project.raw).toBe(201);
  const member = await t.rest('PUT', '/api/projects/docs/members/bob', {
    token: alice,
    body: { role: 'member' },
  });
  expect(member.status, member.raw).toBe(200);
});

afterAll(async () => {
  await t?.close();
  if (built) rmSync(built, { recursive: true, force: true });
});

describe('taskflow CLI', () => {
  it('runs the whole workflow against a live server, for people and for machines', async () => {
    const created = json(
      await taskflow([
        'tasks',
        'create',
        'Write the release notes',
        '--project',
        'docs',
        '--priority',
        'high',
        '--label',
        'docs',
        '--label',
        'release',
        '--json',
      ]),
    );
    expect(created).toMatchObject({
      title: 'Write the release notes',
      status: 'pending',
      priority: 'high',
      projectSlug: 'docs',
      labels: ['docs', 'release'],
      createdBy: 'alice',
    });
    const id = String(created.id);
    const other = json(await taskflow(['tasks', 'create', 'Fix the footer', '--project', 'docs', '--json']));

    // The readable table and the filters.
    const table = await taskflow(['tasks', 'list', '--project', 'docs']);
    expect(table.code, table.stderr).toBe(0);
    const [header, ...rows] = table.stdout.trimEnd().split('\n');
    expect(header).toMatch(/^ID\s+STATUS\s+PRIORITY\s+PROGRESS\s+ASSIGNEE\s+PROJECT\s+TITLE$/);
    expect(rows).toHaveLength(2);
    expect(rows.find((row) => row.startsWith(`${id} `))).toMatch(
      /pending\s+high\s+0%\s+-\s+docs\s+Write the release notes/,
    );
    const high = json(await taskflow(['tasks', 'list', '--priority', 'high,critical', '--json']));
    expect(high.items.map((task: { id: number }) => task.id)).toEqual([created.id]);

    // The claim, then a second claim that loses with a 409.
    const started = await taskflow(['start', id]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toBe(
      `Task ${id} is in_progress (0%, assigned to alice): Write the release notes\n`,
    );
    expectFailure(await taskflow(['start', id], as(bob)), 5, /^taskflow: CONFLICT: .*in_progress/);
    const lost = await taskflow(['claim', id, '--json'], as(bob));
    expect(lost.code).toBe(5);
    expect(lost.stdout).toBe('');
    expect(JSON.parse(lost.stderr)).toMatchObject({
      code: 'CONFLICT',
      status_code: 409,
      error: expect.any(String),
    });

    const mine = json(
      await taskflow(['tasks', 'list', '--assigned-to', 'me', '--status', 'in_progress', '--json']),
    );
    expect(mine.items.map((task: { id: number }) => task.id)).toEqual([created.id]);
    const unassigned = json(await taskflow(['tasks', 'list', '--assigned-to', 'none', '--json']));
    expect(unassigned.items.map((task: { id: number }) => task.id)).toEqual([other.id]);

    const progressed = await taskflow(['progress', id, '40', '--note', 'half way']);
    expect(progressed.stdout).toMatch(/^Task \d+ is in_progress \(40%, assigned to alice\)/);
    // The server's rules, not the CLI's: 150 is refused by the same schema as everywhere.
    expectFailure(
      await taskflow(['progress', id, '150']),
      2,
      /^taskflow: BAD_REQUEST: Input validation failed; percent: /,
    );

    const blocked = await taskflow(['block', id, '--reason', 'waiting for the changelog']);
    expect(blocked.stdout).toMatch(
      /is blocked \(40%, assigned to alice, reason: waiting for the changelog\)/,
    );
    expect(json(await taskflow(['unblock', id, '--json']))).toMatchObject({
      status: 'in_progress',
      blockedReason: null,
    });
    expect((await taskflow(['review', id])).stdout).toMatch(/is review/);
    expect(json(await taskflow(['complete', id, '--json']))).toMatchObject({
      status: 'completed',
      progressPercent: 100,
      completedAt: expect.any(String),
    });

    const history = json<{ items: { action: string; actorId: string; actorType: string }[] }>(
      await taskflow(['history', id, '--json']),
    ).items;
    expect(history.map((entry) => entry.action)).toEqual([
      'created',
      'started',
      'progressed',
      'blocked',
      'unblocked',
      'submitted',
      'completed',
    ]);
    expect(history.every((entry) => entry.actorId === 'alice' && entry.actorType === 'human')).toBe(true);
    const historyTable = await taskflow(['history', id]);
    expect(historyTable.stdout).toMatch(/^AT\s+ACTOR\s+TYPE\s+ACTION\s+DETAILS\n/);
    expect(historyTable.stdout).toMatch(/alice\s+human\s+progressed\s+.*half way/);

    const shown = await taskflow(['tasks', 'show', id]);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toMatch(/^Task \d+: Write the release notes\n/);
    expect(shown.stdout).toMatch(/status\s+completed \(100%\)/);
    expect(shown.stdout).toMatch(/labels\s+docs, release/);
    // legalActions from the shared state machine: the creator may reopen a completed task.
    expect(shown.stdout).toMatch(/you can\s+reopen\n/);
    expect(json(await taskflow(['tasks', 'show', String(other.id), '--json'], as(bob)))).toMatchObject({
      status: 'pending',
      legalActions: ['start'],
    });
  }, 180_000);

  it('fails with one clear line and a telling exit code', async () => {
    const [badToken, noToken, unreachable, notFound, notAnId, unknown, noReason, badStatus] =
      await Promise.all([
        taskflow(['tasks', 'list'], as('not-a-jwt')),
        taskflow(['tasks', 'list'], { TASKFLOW_TOKEN: undefined }),
        taskflow(['tasks', 'list', '--url', 'http://127.0.0.1:9', '--retry-for', '0']),
        taskflow(['tasks', 'show', '999999']),
        taskflow(['start', 'twelve']),
        taskflow(['strat', '1']),
        taskflow(['block', '1']),
        taskflow(['tasks', 'list', '--status', 'done']),
      ]);
    expectFailure(badToken, 3, /^taskflow: UNAUTHORIZED: /);
    expectFailure(noToken, 3, /^taskflow: no token: pass --token or set TASKFLOW_TOKEN/);
    expectFailure(unreachable, 6, /^taskflow: cannot reach http:\/\/127\.0\.0\.1:9: /);
    expectFailure(notFound, 4, /^taskflow: NOT_FOUND: /);
    expectFailure(notAnId, 2, /^taskflow: .*'twelve'.*must be a task id/);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^taskflow: unknown command 'strat'/);
    expectFailure(noReason, 2, /^taskflow: required option '--reason <text>' not specified/);
    expectFailure(badStatus, 2, /"done" is not one of pending, in_progress/);
  }, 60_000);

  it('says who you are, lists your projects, assigns and reopens', async () => {
    expect((await taskflow(['whoami'], as(bob))).stdout).toMatch(/^bob \(human, user\): /);
    expect(json(await taskflow(['whoami', '--json'], as(bob)))).toMatchObject({ id: 'bob', role: 'user' });
    const projects = await taskflow(['projects'], as(bob));
    expect(projects.stdout).toMatch(/^SLUG\s+OWNER\s+NAME\ndocs\s+alice\s+Docs\n$/);
    expect(json(await taskflow(['projects', '--json'], as(bob)))).toMatchObject([{ slug: 'docs' }]);

    const task = json(await taskflow(['tasks', 'create', 'Hand over', '--project', 'docs', '--json']));
    const id = String(task.id);
    const assigned = await taskflow(['assign', id, 'bob']);
    expect(assigned.stdout).toMatch(new RegExp(`^Task ${id} is pending \\(0%, assigned to bob\\)`));
    expect(json(await taskflow(['assign', id, 'none', '--json'])).assignedTo).toBeNull();
    for (const step of ['start', 'complete']) expect((await taskflow([step, id])).code).toBe(0);
    expect(json(await taskflow(['reopen', id, '--json']))).toMatchObject({ status: 'pending' });
    expectFailure(await taskflow(['reopen', id]), 5, /^taskflow: CONFLICT: /);
  }, 120_000);

  it('sends an idempotency key with every change: a rerun with the same key replays', async () => {
    const create = (title: string) =>
      taskflow(['--idempotency-key', 'notes-run-1', 'tasks', 'create', title, '--project', 'docs', '--json']);
    const first = json(await create('Replayed'));
    const again = json(await create('Replayed'));
    expect(again.id).toBe(first.id);
    const listed = json(
      await taskflow(['tasks', 'list', '--project', 'docs', '--search', 'Replayed', '--json']),
    );
    expect(listed.items).toHaveLength(1);
    // The same key for another request is refused, not replayed.
    expectFailure(
      await create('Something else'),
      1,
      /^\{"error":"This Idempotency-Key.*"code":"UNPROCESSABLE_CONTENT"/,
    );
    // Without a flag every change still carries a key of its own: two runs make two tasks.
    const a = json(await taskflow(['tasks', 'create', 'Twice', '--project', 'docs', '--json']));
    const b = json(await taskflow(['tasks', 'create', 'Twice', '--project', 'docs', '--json']));
    expect(b.id).not.toBe(a.id);
  }, 120_000);

  it('retries a dropped connection, a 503 and a 429 with the same key, within --retry-for', async () => {
    const seen: { status: number; key: string | undefined }[] = [];
    // In front of the real server: the first three attempts fail, the fourth goes through.
    const proxy = await listen(async (req, res, body) => {
      const attempt = seen.length;
      const key = req.headers['idempotency-key'] as string | undefined;
      if (attempt === 0) {
        seen.push({ status: 0, key });
        req.socket.destroy();
        return;
      }
      if (attempt === 1) {
        seen.push({ status: 503, key });
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('upstream restarting');
        return;
      }
      if (attempt === 2) {
        seen.push({ status: 429, key });
        res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' });
        res.end(
          JSON.stringify({
            error: 'Rate limit exceeded',
            code: 'TOO_MANY_REQUESTS',
            status_code: 429,
            requestId: 'r',
          }),
        );
        return;
      }
      const upstream = await fetch(`${url}${req.url}`, {
        method: req.method,
        headers: {
          authorization: String(req.headers.authorization),
          'content-type': String(req.headers['content-type'] ?? 'application/json'),
          ...(key ? { 'idempotency-key': key } : {}),
        },
        ...(body.length > 0 ? { body } : {}),
      });
      seen.push({ status: upstream.status, key });
      res.writeHead(upstream.status, { 'content-type': 'application/json' });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
    try {
      const started = Date.now();
      const run = await taskflow(['--url', proxy.url, 'tasks', 'create', 'Through the storm', '--json']);
      expect(json(run).title).toBe('Through the storm');
      expect(seen.map((attempt) => attempt.status)).toEqual([0, 503, 429, 200]);
      expect(new Set(seen.map((attempt) => attempt.key)).size).toBe(1);
      expect(seen[0]?.key).toMatch(/^[\x21-\x7e]{8,}$/);
      // Back-off after the drop and the 503 (0.5 s, 1 s), then the 1 s Retry-After asked.
      expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    } finally {
      await proxy.close();
    }
  }, 60_000);

  it('gives up when the wait would pass --retry-for, with exit code 7', async () => {
    let attempts = 0;
    const limited = await listen((_req, res) => {
      attempts += 1;
      res.writeHead(429, { 'retry-after': '60', 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          error: 'Rate limit exceeded: retry in 60 s',
          code: 'TOO_MANY_REQUESTS',
          status_code: 429,
          requestId: 'r',
        }),
      );
    });
    try {
      const started = Date.now();
      const run = await taskflow(['--url', limited.url, '--retry-for', '5', 'tasks', 'list']);
      expectFailure(run, 7, /^taskflow: TOO_MANY_REQUESTS: Rate limit exceeded: retry in 60 s\n$/);
      expect(attempts).toBe(1);
      expect(Date.now() - started).toBeLessThan(5000);
    } finally {
      await limited.close();
    }
  }, 60_000);

  it('takes --url and --token flags as well as the environment', async () => {
    const run = await taskflow(['--url', url, '--token', bob, 'tasks', 'list', '--json'], {
      TASKFLOW_URL: 'http://127.0.0.1:9',
      TASKFLOW_TOKEN: 'not-a-jwt',
    });
    expect(json(run).items.length).toBeGreaterThan(0);
  });

  it('is built on the typed client only: no services, routers or database', () => {
    // What it loads at run time: its own folder and shared/, nothing else of server/ or db/.
    expect(reachedFiles).toContain(CLI);
    expect(reachedFiles).toContain('shared/client.ts');
    expect(reachedFiles.filter((file) => !/^(server\/cli|shared)\//.test(file))).toEqual([]);
    const packages = reachedFiles
      .filter((file) => file.startsWith('server/cli/'))
      .flatMap((file) => [...readFileSync(join(ROOT, file), 'utf8').matchAll(/from '([^.'][^']*)'/g)])
      .map((match) => match[1])
      // Node's own modules (`taskflow work` spawns the command) are not packages.
      .filter((name) => !name?.startsWith('node:'));
    expect(new Set(packages)).toEqual(new Set(['commander']));
  });
});

/** A throw-away HTTP server on 127.0.0.1 that hands each request, with its body, to `handle`. */
async function listen(
  handle: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void | Promise<void>,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => void handle(req, res, Buffer.concat(chunks)));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => {
      server.closeAllConnections();
      return new Promise((done) => server.close(() => done()));
    },
  };
}
