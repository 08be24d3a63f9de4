import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/chromium.js';
import { type Run, runProcess } from '../helpers/run-process.js';
import { freePort, ROOT } from '../helpers/spawn-server.js';

/**
 * The Next.js developer's path, end to end: `@taskflow/client` is packed and installed with npm into
 * test/fixtures/next (a Next 16 app with React Query through @trpc/tanstack-react-query, whose files
 * are the README's recipes), `next build` compiles and type-checks it (and fails on a deliberate type
 * error), `next start` serves it against a live TaskFlow, and Chromium lists, creates and sees a task.
 *
 * The fixture's node_modules is installed once per lockfile (`npm ci`, then kept, gitignored) and
 * Next keeps its build cache in .next. It runs only in the PGlite pass of `npm test`: it tests the
 * package and the app, which the database does not change, and a Next build is its longest part.
 */

const FIXTURE = join(ROOT, 'test/fixtures/next');
const NEXT = join(FIXTURE, 'node_modules/next/dist/bin/next');
const PROBE = join(FIXTURE, 'app/type-error-probe.ts');
const SEEDED = 'Seeded before the page loads';
const CREATED = 'Created in the browser';

function run(command: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return runProcess(command, args, { cwd: FIXTURE, env: { NEXT_TELEMETRY_DISABLED: '1', ...env } });
}

function succeeded(result: Run, what: string): Run {
  expect(result.code, `${what}\n${result.stdout}\n${result.stderr}`).toBe(0);
  return result;
}

describe.skipIf(Boolean(process.env.TEST_DATABASE_URL))(
  'a Next.js app on the packed @taskflow/client',
  () => {
    let work: string;
    let brokenBuild: Run;
    let t: TestApp;
    let next: ChildProcess | undefined;
    let nextUrl: string;
    let browser: Browser | undefined;
    let alice: string;
    const seconds: Record<string, number> = {};

    async function timed<T>(step: string, work: () => Promise<T>): Promise<T> {
      const started = Date.now();
      try {
        return await work();
      } finally {
        seconds[step] = Math.round((Date.now() - started) / 100) / 10;
      }
    }

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), 'taskflow-nextjs-'));
      const lockHash = createHash('sha256')
        .update(readFileSync(join(FIXTURE, 'package-lock.json')))
        .digest('hex');
      const stamp = join(FIXTURE, 'node_modules/.taskflow-lock-hash');
      if (!existsSync(stamp) || readFileSync(stamp, 'utf8') !== lockHash) {
        await timed('npm ci', async () =>
          succeeded(await run('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund']), 'npm ci'),
        );
        writeFileSync(stamp, lockHash);
      }
      const packed = await timed('pack', async () =>
        succeeded(
          await runProcess(
            process.execPath,
            [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), 'server/cli/pack-client.ts', '--out', work],
            { cwd: ROOT },
          ),
          'pack:client',
        ),
      );
      const tarball = packed.stdout.trim().split('\n').at(-1) as string;
      // A real install: npm checks the peer ranges against the app's tRPC, React Query bindings and zod.
      await timed('npm install', async () =>
        succeeded(
          await run('npm', ['install', '--no-save', '--prefer-offline', '--no-audit', '--no-fund', tarball]),
          'npm install',
        ),
      );

      writeFileSync(
        PROBE,
        `import { createTaskflowClient } from '@taskflow/client';\n\n` +
          `export const probe = () => createTaskflowClient({ url: '/' }).tasks.create.mutate({ title: 42 });\n`,
      );
      try {
        brokenBuild = await timed('next build (type error)', () => run(process.execPath, [NEXT, 'build']));
      } finally {
        rmSync(PROBE, { force: true });
      }
      await timed('next build', async () =>
        succeeded(await run(process.execPath, [NEXT, 'build']), 'next build'),
      );

      const port = await freePort();
      nextUrl = `http://127.0.0.1:${port}`;
      t = await createTestApp({ listen: true, allowedOrigins: [nextUrl] });
      const address = t.app.server.address();
      if (!address || typeof address === 'string') throw new Error('the test app is not listening on a port');
      const taskflowUrl = `http://127.0.0.1:${address.port}`;
      alice = await t.token('alice');

      next = spawn(process.execPath, [NEXT, 'start', '-p', String(port), '-H', '127.0.0.1'], {
        cwd: FIXTURE,
        env: {
          ...process.env,
          NEXT_TELEMETRY_DISABLED: '1',
          TASKFLOW_URL: taskflowUrl,
          TASKFLOW_PUBLIC_URL: taskflowUrl,
          BETTER_AUTH_URL: nextUrl,
          FIXTURE_TOKEN: alice,
        },
        stdio: 'ignore',
      });
      const [, launched] = await Promise.all([
        timed('next start', async () => {
          for (let attempt = 0; attempt < 300; attempt++) {
            const up = await fetch(`${nextUrl}/api/auth/token`).catch(() => null);
            if (up?.ok) return;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          throw new Error('next start did not answer within 30 s');
        }),
        launchChromium(),
      ]);
      browser = launched;
    }, 600_000);

    afterAll(async () => {
      await browser?.close().catch(() => {});
      if (next && next.exitCode === null) {
        const exited = new Promise((resolve) => next?.once('exit', resolve));
        next.kill('SIGTERM');
        await exited;
      }
      await t?.close();
      rmSync(PROBE, { force: true });
      if (work) rmSync(work, { recursive: true, force: true });
      console.log(`Next.js fixture, seconds per step: ${JSON.stringify(seconds)}`);
    });

    it('fails `next build` on a deliberate type error in a call', () => {
      expect(brokenBuild.code).not.toBe(0);
      const output = `${brokenBuild.stdout}\n${brokenBuild.stderr}`;
      expect(output).toMatch(/type-error-probe\.ts\(\d+,\d+\): error TS2322/);
      expect(output).toContain('Failed to type check');
    });

    it('renders the tasks TaskFlow has at request time, not at build time', async () => {
      const seeded = await t.rest('POST', '/api/tasks', { token: alice, body: { title: SEEDED } });
      expect(seeded.status, seeded.raw).toBe(201);
      // Prefetched on the server and dehydrated into the HTML.
      const html = await (await fetch(nextUrl)).text();
      expect(html).toContain(SEEDED);

      const later = `Made after the first render ${Date.now()}`;
      expect((await t.rest('POST', '/api/tasks', { token: alice, body: { title: later } })).status).toBe(201);
      expect(await (await fetch(nextUrl)).text()).toContain(later);
    });

    it('lists, creates and shows a task in Chromium, with no refetch on hydration and one token fetch', async () => {
      const page: Page = await (browser as Browser).newPage();
      const listCalls: Request[] = [];
      const createCalls: Request[] = [];
      const tokenCalls: Request[] = [];
      page.on('request', (request) => {
        const url = new URL(request.url());
        if (url.pathname.startsWith('/trpc/') && url.pathname.includes('tasks.list')) listCalls.push(request);
        if (url.pathname.startsWith('/trpc/') && url.pathname.includes('tasks.create'))
          createCalls.push(request);
        if (url.pathname === '/api/auth/token') tokenCalls.push(request);
      });
      const errors: string[] = [];
      page.on('pageerror', (error) => errors.push(error.message));

      await page.goto(nextUrl, { waitUntil: 'networkidle' });
      const items = page.getByRole('list', { name: 'Tasks' }).getByRole('listitem');
      await expect.poll(() => items.allTextContents()).toContain(SEEDED);
      // staleTime: what the server prefetched is not asked for again by the browser.
      expect(listCalls).toHaveLength(0);

      await page.getByRole('textbox', { name: 'New task' }).fill(CREATED);
      await page.getByRole('button', { name: 'Create' }).click();
      await expect.poll(() => items.allTextContents(), { timeout: 10_000 }).toContain(CREATED);
      expect(createCalls).toHaveLength(1);
      // The list was invalidated and fetched again, with the cached token.
      expect(listCalls.length).toBeGreaterThanOrEqual(1);
      expect(tokenCalls).toHaveLength(1);
      const sent = await createCalls[0]?.allHeaders();
      expect(sent?.authorization).toBe(`Bearer ${alice}`);
      expect(errors).toEqual([]);

      const listed = await t.rest('GET', '/api/tasks', { token: alice });
      expect(listed.body.items).toEqual(
        expect.arrayContaining([expect.objectContaining({ title: CREATED, createdBy: 'alice' })]),
      );
      await page.close();
    }, 60_000);

    it('renders the server component of my tasks per request', async () => {
      const mine = await t.rest('POST', '/api/tasks', { token: alice, body: { title: 'Mine to do' } });
      const before = await (await fetch(`${nextUrl}/mine`)).text();
      expect(before).not.toContain('Mine to do');
      expect((await t.rest('POST', `/api/tasks/${mine.body.id}/start`, { token: alice })).status).toBe(200);
      expect(await (await fetch(`${nextUrl}/mine`)).text()).toContain('Mine to do');
    });

    it('ships zod only to the page that validates a form', async () => {
      const scriptsOf = async (path: string) => {
        const html = await (await fetch(`${nextUrl}${path}`)).text();
        const sources = [...html.matchAll(/<script[^>]+src="([^"]+)"/g)].map((match) => match[1] as string);
        const bodies = await Promise.all(
          [...new Set(sources)].map(async (src) => (await fetch(new URL(src, nextUrl))).text()),
        );
        return {
          bytes: bodies.reduce((sum, body) => sum + Buffer.byteLength(body), 0),
          zod: bodies.some(isZod),
        };
      };
      // zod 4 names its classes with these strings, which minifying keeps.
      const isZod = (code: string) => code.includes('$ZodType');
      const home = await scriptsOf('/');
      const form = await scriptsOf('/new');
      console.log(
        `Next.js page JavaScript: / ${(home.bytes / 1024).toFixed(1)} KB (no zod), ` +
          `/new ${(form.bytes / 1024).toFixed(1)} KB (with zod)`,
      );
      expect(form.zod).toBe(true);
      expect(home.zod).toBe(false);
    });
  },
);
