import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { type Db, rowsOf } from '../../db/client.js';
import type { Claimed } from '../../server/services/webhooks/queue.js';
import { SuccessRecorder } from '../../server/services/webhooks/success-recorder.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type CapturedQuery, capturingDb } from '../helpers/explain.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';

// 2xx answers are recorded in groups: one statement for all that came while the last one ran. Each
// still counts on its own: a delivery whose claim was lost is skipped, the rest of its group not.

const SECRET = 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0';
let t: TestDatabase;

afterAll(async () => {
  await t?.cleanup();
});

async function rows<T>(db: Db, statement: ReturnType<typeof sql>): Promise<T[]> {
  return rowsOf(await db.execute(statement)) as T[];
}

/** Two endpoints (one marked failing) and `count` deliveries claimed once, alternating between them. */
async function claimed(db: Db, count: number): Promise<Claimed[]> {
  const endpoints = await rows<{ id: number }>(
    db,
    sql`insert into webhook_endpoints (url, secret, created_by, failing_since)
      values ('https://a.example.com/', ${SECRET}, 'test', now() - interval '1 hour'),
             ('https://b.example.com/', ${SECRET}, 'test', null)
      returning id`,
  );
  const ids = endpoints.map((row) => Number(row.id));
  const deliveries = await rows<{ id: number; endpoint_id: number; message_id: string; created_at: string }>(
    db,
    sql`insert into webhook_deliveries (endpoint_id, message_id, payload, attempts, lease_until)
      select (array[${ids[0]}::bigint, ${ids[1]}::bigint])[1 + n % 2], 'm_' || n || '_' || ${ids[0]},
        '{}'::jsonb, 1, now() + interval '1 minute'
      from generate_series(1, ${count}) n
      returning id, endpoint_id, message_id, created_at`,
  );
  return deliveries.map((row) => ({
    id: Number(row.id),
    endpointId: Number(row.endpoint_id),
    eventId: null,
    messageId: row.message_id,
    payload: {},
    attempts: 1,
    createdAt: new Date(row.created_at),
    url: 'https://a.example.com/',
    secret: SECRET,
  }));
}

const ok = (at: Date) => ({ statusCode: 204, error: null, durationMs: 3, at });

describe('recording 2xx answers', () => {
  beforeEach(async () => {
    t ??= await createTestDatabase();
  });

  it('records every answer of a group, skips a lost claim, and clears the endpoint health', async () => {
    const db = t.database.db;
    const deliveries = await claimed(db, 30);
    const lost = deliveries[7] as Claimed;
    // Another instance took this one over after this instance's lease ran out: attempt 2 is its own.
    await db.execute(sql`update webhook_deliveries set attempts = 2 where id = ${lost.id}`);
    const recorder = new SuccessRecorder(db);
    const at = new Date();
    await Promise.all(deliveries.map((delivery) => recorder.record({ delivery, sent: ok(at) })));

    const states = await rows<{ id: number; state: string }>(
      db,
      sql`select id, state from webhook_deliveries where id in ${deliveries.map((d) => d.id)} order by id`,
    );
    expect(states.filter((row) => row.state === 'succeeded')).toHaveLength(29);
    expect(states.find((row) => Number(row.id) === lost.id)?.state).toBe('pending');
    const attempts = await rows<{ delivery_id: number; attempt: number; status_code: number }>(
      db,
      sql`select delivery_id, attempt, status_code from webhook_attempts
        where delivery_id in ${deliveries.map((d) => d.id)}`,
    );
    expect(attempts).toHaveLength(29);
    expect(attempts.every((row) => row.attempt === 1 && row.status_code === 204)).toBe(true);
    expect(attempts.some((row) => Number(row.delivery_id) === lost.id)).toBe(false);
    const failing = await rows<{ n: number }>(
      db,
      sql`select count(*)::int as n from webhook_endpoints
        where id in ${[...new Set(deliveries.map((d) => d.endpointId))]} and failing_since is not null`,
    );
    expect(Number(failing[0]?.n)).toBe(0);
  });
});

describePostgresOnly('grouping 2xx answers', () => {
  it('records answers that come while a statement runs in one more statement, not one each', async () => {
    t ??= await createTestDatabase();
    const client = postgres(t.url as string, { max: 2, onnotice: () => {} });
    const captured: CapturedQuery[] = [];
    const db = capturingDb(client, captured);
    try {
      const deliveries = await claimed(db, 40);
      captured.length = 0;
      const recorder = new SuccessRecorder(db);
      const at = new Date();
      await Promise.all(deliveries.map((delivery) => recorder.record({ delivery, sent: ok(at) })));
      // The first goes at once; the 39 that came meanwhile go together.
      expect(captured.filter((q) => q.query.includes('update webhook_deliveries'))).toHaveLength(2);
      const [done] = await rows<{ n: number }>(
        db,
        sql`select count(*)::int as n from webhook_deliveries
          where id in ${deliveries.map((d) => d.id)} and state = 'succeeded'`,
      );
      expect(Number(done?.n)).toBe(40);
    } finally {
      await client.end();
    }
  });
});
