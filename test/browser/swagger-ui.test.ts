import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { launchChromium } from '../helpers/chromium.js';

const OUTPUT_DIR = fileURLToPath(new URL('../../test-output/', import.meta.url));
const SCREENSHOT = join(OUTPUT_DIR, 'swagger-ui.png');
const TITLE = 'Seen in Swagger UI';

let t: TestApp | undefined;
let browser: Browser | undefined;
let page: Page;
let base: string;
let token: string;
/** Browser console errors and uncaught page errors: printed with any failing assertion. */
const browserErrors: string[] = [];

beforeAll(async () => {
  // Start Chromium while the app and its database come up.
  const launching = launchChromium();
  const [app, launched] = await Promise.allSettled([createTestApp({ listen: true }), launching]);
  // Keep whatever started, so afterAll closes it even when the other half failed.
  if (app.status === 'fulfilled') t = app.value;
  if (launched.status === 'fulfilled') browser = launched.value;
  if (app.status === 'rejected') throw app.reason;
  if (launched.status === 'rejected') throw launched.reason;
  const address = app.value.app.server.address();
  if (!address || typeof address === 'string') throw new Error('the test app is not listening on a port');
  base = `http://127.0.0.1:${address.port}`;

  token = await app.value.token('alice');
  const created = await app.value.rest('POST', '/api/tasks', { token, body: { title: TITLE } });
  expect(created.status, created.raw).toBe(201);

  page = await launched.value.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(10_000);
  page.on('console', (message) => {
    if (message.type() === 'error') browserErrors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => browserErrors.push(`pageerror: ${error.message}`));
});

afterAll(async () => {
  // Each step on its own, so a failed launch or a crashed browser still closes the app.
  await browser?.close().catch(() => {});
  await t?.close();
});

describe('Swagger UI at /docs in a real browser', () => {
  it('authorizes with a bearer token and runs "Try it out" on GET /api/tasks', async () => {
    const errors = () => `browser errors:\n${browserErrors.join('\n') || '(none)'}`;
    // On a failure the screenshot shows the whole page where the UI stopped.
    onTestFailed(async () => {
      mkdirSync(OUTPUT_DIR, { recursive: true });
      await page?.screenshot({ path: SCREENSHOT, fullPage: true }).catch(() => {});
    });

    const loaded = await page.goto(`${base}/docs`, { waitUntil: 'load' });
    expect(loaded?.status(), errors()).toBe(200);

    // The top-level Authorize button (the lock icons on each operation open the same dialog).
    await page.locator('.scheme-container .btn.authorize').click();
    const dialog = page.locator('.dialog-ux .modal-ux');
    await expect.poll(() => dialog.isVisible(), { message: errors() }).toBe(true);
    // Our http bearer scheme is named `Authorization`.
    await expect
      .poll(() => dialog.locator('.auth-container h4').allInnerTexts())
      .toEqual([expect.stringContaining('Authorization')]);
    await dialog.locator('input[aria-label="auth-bearer-value"]').fill(token);
    await dialog.locator('.auth-btn-wrapper .btn.authorize').click();
    // Once authorized the dialog offers Logout instead of Authorize.
    await dialog.locator('.auth-btn-wrapper .btn', { hasText: 'Logout' }).waitFor();
    await dialog.locator('.auth-btn-wrapper .btn-done').click();
    await dialog.waitFor({ state: 'detached' });

    // GET /tasks under the `tasks` tag, operationId `listTasks`.
    const operation = page.locator('#operations-tasks-listTasks');
    await expect.poll(() => operation.getAttribute('class')).toContain('opblock-get');
    await operation.locator('.opblock-summary .opblock-summary-control').click();
    await operation.locator('.try-out__btn').click();

    // "Try it out" pre-fills filters from the schema examples (assignedTo=alice, project=website,
    // updatedSince=...): they would hide our task, so clear every text field, as a user would.
    // (Left in, assignedTo=alice is also refused by Swagger UI itself: it compiles the schema pattern
    // ^[^\s\p{Cc}]+$ without the `u` flag, so `\p{Cc}` means the letters p, {, C, c, }.)
    const fields = operation.locator('.parameters input[type="text"]');
    await fields.first().waitFor();
    for (const field of await fields.all()) await field.fill('');

    const calls: Request[] = [];
    page.on('request', (request) => {
      if (request.method() === 'GET' && new URL(request.url()).pathname === '/api/tasks') calls.push(request);
    });
    await operation.locator('.btn.execute').click();
    // Either the live response arrives or Swagger UI's own validation refuses to send the request.
    const refused = operation.locator('.validation-errors');
    await operation.locator('.live-responses-table').or(refused).first().waitFor();
    if (await refused.count()) {
      throw new Error(`Swagger UI refused to execute: ${await refused.textContent()}\n${errors()}`);
    }
    expect(calls, errors()).toHaveLength(1);
    const [request] = calls as [Request];
    const response = await request.response();

    // The request Swagger UI sent carried the pasted token, and the server accepted it.
    expect((await request.allHeaders()).authorization, errors()).toBe(`Bearer ${token}`);
    expect(response?.status(), `${await response?.text()}\n${errors()}`).toBe(200);
    expect(new URL(request.url()).search, 'no example filters left in the query').not.toMatch(
      /assignedTo|project|updatedSince/,
    );

    // What the page shows: the curl line, the live response code and the body with our task.
    const live = operation.locator('.live-responses-table');
    await live.waitFor();
    await expect
      .poll(() => operation.locator('.curl-command').textContent(), { message: errors() })
      .toContain(`Authorization: Bearer ${token}`);
    await expect
      .poll(() => live.locator('.response .response-col_status').first().textContent(), { message: errors() })
      .toMatch(/^\s*200\s*$/);
    await expect
      .poll(() => live.locator('.response-col_description .highlight-code').first().textContent(), {
        message: errors(),
      })
      .toContain(TITLE);

    await expect.poll(() => operation.locator('.request-url').textContent()).toContain(`${base}/api/tasks`);
    expect(browserErrors, errors()).toEqual([]);

    // The page from the top (Authorize shows a closed lock) down to the end of the live response.
    const box = await live.boundingBox();
    const scrollY = await page.evaluate<number>('window.scrollY');
    const bottom = Math.ceil((box?.y ?? 0) + (box?.height ?? 0) + scrollY + 16);
    mkdirSync(OUTPUT_DIR, { recursive: true });
    await page.screenshot({
      path: SCREENSHOT,
      fullPage: true,
      clip: { x: 0, y: 0, width: 1280, height: bottom },
    });
  }, 60_000);
});
