import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, type Database } from '../../db/client.js';
import { WebhookWorker } from '../../server/services/webhooks/index.js';
import { claim } from '../../server/services/webhooks/queue.js';
import { systemResolve } from '../../server/services/webhooks/ssrf.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, ok, query, type TestActor } from '../helpers/factories.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// Several instances on one database: the app's own worker and two more, each with its own pool on
// PostgreSQL (its own connections, as separate processes have). Every attempt is claimed by exactly
// one of them. (On PGlite they share the one embedded connection.)
let t: TestApp;
let receiver: WebhookReceiver;
let owner: TestActor;
const extra: { database: Database; worker?: WebhookWorker; own: boolean }[] = [];

const urls = { allowPrivate: true, requireHttps: false, resolve: systemResolve };

beforeAll(async () => {
  t = await createTestApp({ webhooks: { config: { allowPrivate: true }, pollMs: 50 } });
  receiver = await new WebhookReceiver().start();
  ({ owner } = await makeActors(t, { owner: 'ona' }));
  await makeProject(t, owner, 'many');
  for (let i = 0; i < 2; i++) {
    const url = t.db.url;
    extra.push(
      url
        ? { database: await createDatabase({ kind: 'postgres', url, poolMax: 5 }), own: true }
        : { database: t.db.database, own: false },
    );
  }
});
afterAll(async () => {
  for (const instance of extra) {
    await instance.worker?.close();
    if (instance.own) await instance.database.close();
  }
  await t.close();
  await receiver.stop();
});

/** `count` events in project `many`, written straight to the audit log in one statement. */
async function events(count: number): Promise<void> {
  await query(
    t,
    sql`insert into audit_log (actor_id, actor_type, action, project_slug)
      select 'ona', 'human', 'updated', 'many' from generate_series(1, ${count})`,
  );
}

describe('webhook delivery across instances', () => {
  it('never hands one due delivery to two concurrent claims', async () => {
    const hook = ok(
      await t.rest('POST', '/api/webhooks', {
        token: owner.token,
        body: { url: receiver.url('/unused'), project: 'many', actions: ['unblocked'] },
      }),
      201,
    );
    await query(
      t,
      sql`insert into webhook_deliveries (endpoint_id, message_id, payload, next_attempt_at)
        select ${hook.id}, 'race_' || n, '{}'::jsonb, now() - interval '1 minute' from generate_series(1, 120) n`,
    );
    // The app's own worker races these claims too; a row taken twice would show 2 attempts.
    const options = { leaseMs: 60_000, perEndpoint: 1_000, limit: 7 };
    const databases = [t.db.database, ...extra.map((instance) => instance.database)];
    const rounds = await Promise.all(
      Array.from({ length: 30 }, (_, i) => claim((databases[i % databases.length] as Database).db, options)),
    );
    const ids = rounds.flat().map((row) => row.id);
    expect(ids.length).toBeGreaterThan(0);
    expect(new Set(ids).size).toBe(ids.length);
    const [row] = await query<{ n: number }>(
      t,
      sql`select count(*)::int as n from webhook_deliveries where endpoint_id = ${hook.id} and attempts > 1`,
    );
    expect(Number(row?.n)).toBe(0);
    ok(await t.rest('DELETE', `/api/webhooks/${hook.id}`, { token: owner.token }), 204);
  });

  it('three instances deliver 200 events, each once', async () => {
    for (const instance of extra) {
      instance.worker = new WebhookWorker(instance.database, {
        urls,
        timeoutMs: 10_000,
        policy: { scheduleMs: [100], giveUpAfterMs: 86_400_000 },
        pollMs: 50,
        log: { warn: () => {} },
      });
      instance.worker.start();
    }
    const hook = ok(
      await t.rest('POST', '/api/webhooks', {
        token: owner.token,
        body: { url: receiver.url('/many'), project: 'many', actions: ['updated'] },
      }),
      201,
    );
    receiver.secret('/many', hook.secret);
    for (let i = 0; i < 2; i++) await events(100);
    await receiver.waitFor(() => new Set(receiver.acknowledged('/many')).size === 200, 90_000, '200 events');
    const got = receiver.on('/many');
    expect(got.every((r) => r.verified)).toBe(true);
    expect(got).toHaveLength(200);
    // One attempt each, once the last answers are written down.
    const attempts = async () => {
      const [row] = await query<{ n: number; deliveries: number }>(
        t,
        sql`select count(*)::int as n, count(distinct delivery_id)::int as deliveries
          from webhook_attempts where endpoint_id = ${hook.id}`,
      );
      return [Number(row?.n), Number(row?.deliveries)];
    };
    await expect.poll(attempts, { timeout: 10_000 }).toEqual([200, 200]);
  }, 120_000);
});
