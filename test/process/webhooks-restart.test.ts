import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import {
  devToken,
  freePort,
  killStrays,
  type RunningServer,
  requestJson,
  startServer,
} from '../helpers/spawn-server.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// The real entry point, killed (SIGKILL) while deliveries are pending and in flight, then started again
// on the same database: every event still arrives, and none that the receiver answered with a 2xx
// arrives again (it may see a repeat only of a request it never answered). On PGlite in a data
// directory, or on a fresh PostgreSQL database when TEST_DATABASE_URL is set.
describe('webhook delivery across a killed server', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'taskflow-webhooks-'));
  let db: TestDatabase | null = null;
  let env: Record<string, string> & { PORT: string };
  let receiver: WebhookReceiver;
  let server: RunningServer;
  let token: string;

  beforeAll(async () => {
    receiver = await new WebhookReceiver().start();
    if (process.env.TEST_DATABASE_URL) {
      db = await createTestDatabase();
      // The server migrates for itself; this pool is not needed.
      await db.database.close();
    }
    env = {
      PORT: String(await freePort()),
      DATA_DIR: dataDir,
      LOG_LEVEL: 'warn',
      RATE_LIMIT_PER_MINUTE: '0',
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_RETRY_SCHEDULE: '200ms',
      WEBHOOK_TIMEOUT_MS: '2000',
      ...(db?.url ? { DATABASE_URL: db.url } : {}),
    };
    server = await startServer(env);
    token = await devToken(dataDir, 'kim');
  }, 120_000);

  afterAll(async () => {
    killStrays();
    await receiver.stop();
    if (db) {
      const { cleanup } = db;
      // Closing the already closed pool again is harmless; the database is dropped.
      await cleanup().catch(() => {});
    }
    rmSync(dataDir, { recursive: true, force: true });
  });

  const api = (method: string, path: string, body?: unknown) =>
    requestJson(`${server.url}${path}`, { method, token, body, timeoutMs: 15_000 });

  it('delivers every event after a SIGKILL and restart, none twice that was answered 2xx', async () => {
    expect((await api('POST', '/api/projects', { slug: 'crash', name: 'crash' })).status).toBe(201);
    const hook = await api('POST', '/api/webhooks', { url: receiver.url('/crash'), project: 'crash' });
    expect(hook.status).toBe(201);
    receiver.secret('/crash', hook.body.secret);
    // The first ten messages are answered; after that the receiver holds every request unanswered.
    let answered = 0;
    receiver.answer('/crash', () => (answered++ < 10 ? 200 : 'hang'));
    for (let i = 0; i < 30; i++) {
      expect((await api('POST', '/api/tasks', { title: `t${i}`, projectSlug: 'crash' })).status).toBe(201);
    }
    await receiver.waitFor(() => receiver.acknowledged('/crash').length === 10, 30_000, '10 answered');
    await receiver.waitFor(() => receiver.on('/crash').some((r) => r.status === null), 30_000, 'one held');
    // Killed once the answered ones are written down: a 2xx the server never recorded is a "did not
    // answer" from its side, and the contract allows a repeat of those.
    await expect
      .poll(
        async () =>
          (await api('GET', `/api/webhooks/${hook.body.id}/deliveries?limit=100`)).body.items.filter(
            (x: { statusCode: number | null }) => x.statusCode === 200,
          ).length,
        { timeout: 15_000 },
      )
      .toBe(10);
    server.child.kill('SIGKILL');
    await server.exited;
    const before = receiver.acknowledged('/crash');

    receiver.answer('/crash', () => 200);
    server = await startServer(env);
    // Everything since the endpoint was made: its own webhook_created and the 30 tasks.
    const events = (await api('GET', '/api/events?project=crash&limit=500')).body.items
      .filter((e: { action: string }) => e.action !== 'project_created')
      .map((e: { id: number }) => String(e.id));
    expect(events.length).toBe(31);
    await receiver.waitFor(
      () => new Set(receiver.acknowledged('/crash')).size === events.length,
      45_000,
      'every event',
    );
    const acknowledged = receiver.acknowledged('/crash');
    expect([...new Set(acknowledged)].sort()).toEqual([...events].sort());
    expect(acknowledged.length).toBe(events.length);
    expect(before.length).toBe(10);
    expect(receiver.on('/crash').every((r) => r.verified)).toBe(true);
  }, 150_000);
});
