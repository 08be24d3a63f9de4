import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  devToken,
  freePort,
  killStrays,
  type ProcessResult,
  type RunningServer,
  startServer,
} from '../helpers/spawn-server.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** One request on a new connection: its status, or the connection error code. */
function probe(port: number, path: string): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
      res.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

// The real entry point (`server/main.ts`, as `npm start` runs its build) on PGlite in a temporary
// DATA_DIR, a free port and a token from the real token CLI.
describe('server/main.ts', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'taskflow-shutdown-'));
  let port: number;
  let token: string;
  let server: RunningServer;

  beforeAll(async () => {
    port = await freePort();
    // The server makes the development key; the CLI then signs with the same key.
    server = await startServer({ PORT: String(port), DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    token = await devToken(dataDir, 'x');
  }, 120_000);

  afterAll(() => {
    killStrays();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves /health, /api/health/db, an OpenAPI 3.1 document and the Swagger UI', async () => {
    const health = await fetch(`${server.url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', version: expect.any(String) });
    const db = await fetch(`${server.url}/api/health/db`);
    expect(db.status).toBe(200);
    expect(await db.json()).toMatchObject({ status: 'ok', database: 'pglite' });
    const openapi = await fetch(`${server.url}/openapi.json`);
    expect(openapi.status).toBe(200);
    expect(((await openapi.json()) as { openapi: string }).openapi).toMatch(/^3\.1\./);
    const docs = await fetch(`${server.url}/docs`, { redirect: 'follow' });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger-ui/i);
  });

  it('on SIGTERM, finishes the request in flight with its 201, refuses new work and exits 0', async () => {
    const events: string[] = [];
    const exited = server.exited.then((result) => {
      events.push('exit');
      return result;
    });

    // A request that is slow because its client sends the JSON body in pieces over ~1.5 s.
    const body = Buffer.from(
      JSON.stringify({ title: 'written during shutdown', description: 'x'.repeat(600) }),
    );
    const pieces = 6;
    const size = Math.ceil(body.length / pieces);
    const req = request({
      host: '127.0.0.1',
      port,
      method: 'POST',
      path: '/api/tasks',
      agent: false,
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/json',
        'content-length': body.length,
      },
    });
    const response = new Promise<{ status?: number; text: string }>((resolve, reject) => {
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => {
          events.push('response');
          resolve({ status: res.statusCode, text });
        });
        res.on('error', reject);
      });
    });
    const send = (i: number) =>
      new Promise<void>((resolve, reject) =>
        req.write(body.subarray(i * size, (i + 1) * size), (error) => (error ? reject(error) : resolve())),
      );

    await send(0);
    await sleep(250);
    await send(1);
    await sleep(100);

    server.child.kill('SIGTERM');
    events.push('sigterm');
    await waitFor(() => server.output.stdout.includes('shutting down'), 10_000, 'the shutdown log line');
    await sleep(100);

    // The listener is closed: a new connection is refused, or at least not served.
    const late = await probe(port, '/health');
    expect(late.status === undefined || late.status >= 300, JSON.stringify(late)).toBe(true);

    for (let i = 2; i < pieces; i++) {
      await sleep(250);
      await send(i);
    }
    req.end();
    events.push('body sent');

    const result = await response;
    expect(result.status, result.text).toBe(201);
    expect(JSON.parse(result.text)).toMatchObject({ title: 'written during shutdown', createdBy: 'x' });

    const exit: ProcessResult = await Promise.race([
      exited,
      sleep(20_000).then(() => {
        throw new Error(`no exit after SIGTERM: ${server.output.stderr}`);
      }),
    ]);
    expect(exit.signal).toBeNull();
    expect(exit.code, exit.stderr).toBe(0);
    expect(events).toEqual(['sigterm', 'body sent', 'response', 'exit']);
    // The bearer token never reaches the logs.
    expect(exit.stdout + exit.stderr).not.toContain(token);
  });
});
