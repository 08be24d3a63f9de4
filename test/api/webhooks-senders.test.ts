import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'drizzle-orm';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { buildApp } from '../../server/app.js';
import { createRemoteVerifier } from '../../server/auth/verifier.js';
import { DEFAULT_RETRY_SCHEDULE_MS } from '../../server/services/webhooks/index.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, query, type TestActor } from '../helpers/factories.js';
import { TEST_AUDIENCE, TEST_ISSUER } from '../helpers/jwks-server.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// WEBHOOK_SENDERS=false: an API instance that queues deliveries and leaves sending them to another
// instance on the same database (on PostgreSQL with a pool of its own, as another process has; on
// PGlite the same embedded database).
let api: TestApp;
let receiver: WebhookReceiver;
let owner: TestActor;
let sender: FastifyInstance | null = null;
let senderDatabase: Database | null = null;

beforeAll(async () => {
  api = await createTestApp({ webhooks: { config: { allowPrivate: true, senders: false }, pollMs: 50 } });
  receiver = await new WebhookReceiver().start();
  ({ owner } = await makeActors(api, { owner: 'oona' }));
  await makeProject(api, owner, 'apart');
});
afterAll(async () => {
  await sender?.close();
  await senderDatabase?.close();
  await api.close();
  await receiver.stop();
});

/** Another instance on the API's database with its senders on; it polls only once a minute. */
async function startSender(): Promise<void> {
  senderDatabase = api.db.url ? await createDatabase({ kind: 'postgres', url: api.db.url }) : null;
  sender = await buildApp({
    config: {
      allowedOrigins: [],
      bodyLimitBytes: 1 << 20,
      requestTimeoutMs: 15_000,
      logLevel: 'silent',
      webhooks: {
        allowPrivate: true,
        requireHttps: false,
        retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
        timeoutMs: 10_000,
        senders: true,
      },
    },
    database: senderDatabase ?? api.db.database,
    verifier: createRemoteVerifier({ jwksUrl: api.jwks.url, issuer: TEST_ISSUER, audience: TEST_AUDIENCE }),
    logger: false,
    webhooks: { pollMs: 60_000 },
  });
  await sender.ready();
}

describe('an instance with WEBHOOK_SENDERS=false', () => {
  it('queues deliveries that another instance sends, and wakes it for a ping', async () => {
    const hook = ok<{ id: number; secret: string }>(
      await api.rest('POST', '/api/webhooks', {
        token: owner.token,
        body: { url: receiver.url('/apart'), project: 'apart' },
      }),
      201,
    );
    receiver.secret('/apart', hook.secret);
    const task = await makeTask(api, owner, { projectSlug: 'apart', title: 'queued here, sent there' });

    // Twenty of its polls go by: it queued the delivery and sends nothing itself.
    await sleep(1_000);
    expect(receiver.on('/apart')).toEqual([]);
    const queued = await query<{ attempts: number }>(
      api,
      sql`select attempts from webhook_deliveries where endpoint_id = ${hook.id}`,
    );
    expect(queued.length).toBeGreaterThan(0);
    expect(queued.every((row) => row.attempts === 0)).toBe(true);
    expect(api.logs.some((line) => line.includes('webhook senders are off here'))).toBe(true);

    await startSender();
    await receiver.waitFor(() => receiver.on('/apart').length === queued.length);
    expect(receiver.on('/apart').every((got) => got.verified)).toBe(true);
    expect(receiver.on('/apart').map((got) => got.json)).toContainEqual(
      expect.objectContaining({ action: 'created', taskId: task.id }),
    );

    // Once the sender is idle (it polls once a minute), a ping queued by the API reaches it through
    // the notification.
    await expect
      .poll(
        async () =>
          (
            await query<{ n: number }>(
              api,
              sql`select count(*)::int as n from webhook_deliveries
                where endpoint_id = ${hook.id} and state <> 'succeeded'`,
            )
          )[0]?.n,
        { timeout: 10_000 },
      )
      .toBe(0);
    await sleep(300);
    const sent = ok<{ messageId: string }>(
      await api.rest('POST', `/api/webhooks/${hook.id}/test`, { token: owner.token }),
    );
    await receiver.waitFor(() => receiver.on('/apart').length === queued.length + 1, 10_000, 'the ping');
    expect(receiver.on('/apart').at(-1)).toMatchObject({ id: sent.messageId, verified: true });
  });
});
