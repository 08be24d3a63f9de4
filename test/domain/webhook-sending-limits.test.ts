import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemResolve } from '../../server/services/webhooks/ssrf.js';
import { SENDING_LIMITS, WebhookWorker } from '../../server/services/webhooks/worker.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// The senders share the API's process: while it serves requests they keep to the busy limits, and
// take the quiet ones once it has none. Shown with an endpoint that never answers, so every attempt
// it was given stays in flight and can be counted.

const SECRET = 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0';
let t: TestDatabase;
let receiver: WebhookReceiver;

beforeAll(async () => {
  t = await createTestDatabase();
  receiver = await new WebhookReceiver().start();
  receiver.secret('/hang', SECRET);
  receiver.answer('/hang', () => 'hang');
});

afterAll(async () => {
  await receiver?.stop();
  await t?.cleanup();
});

describe('webhook sending limits', () => {
  it('keeps to the busy limits while the API serves requests, and takes the quiet ones after', async () => {
    const db = t.database.db;
    await db.execute(sql`insert into webhook_endpoints (url, secret, created_by)
      values (${receiver.url('/hang')}, ${SECRET}, 'test')`);
    // Twelve changes queue twelve deliveries to it (the audit trigger writes them).
    await db.execute(sql`insert into audit_log (actor_id, actor_type, action, task_id, context)
      select 'test', 'agent', 'created', n, '{}'::jsonb from generate_series(1, 12) n`);
    let busy = true;
    const worker = new WebhookWorker(t.database, {
      policy: { scheduleMs: [60_000], giveUpAfterMs: 86_400_000 },
      timeoutMs: 30_000,
      urls: { allowPrivate: true, requireHttps: false, resolve: systemResolve },
      pollMs: 50,
      apiBusy: () => busy,
      log: { warn: () => {} },
    });
    try {
      worker.start();
      const { busy: whileBusy, quiet } = SENDING_LIMITS;
      await receiver.waitFor(() => receiver.on('/hang').length >= whileBusy.perEndpoint, 10_000);
      // Several more polls: none of them may send more while the API is busy.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(receiver.on('/hang')).toHaveLength(whileBusy.perEndpoint);
      busy = false;
      await receiver.waitFor(() => receiver.on('/hang').length >= quiet.perEndpoint, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(receiver.on('/hang')).toHaveLength(quiet.perEndpoint);
    } finally {
      await worker.close();
    }
  });
});
