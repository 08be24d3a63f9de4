import { TransactionRollbackError } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Db } from '../../db/client.js';
import { claim } from '../../server/services/webhooks/queue.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { type CapturedQuery, capturingDb, nodes, type PlanNode } from '../helpers/explain.js';
import { describePostgresOnly } from '../helpers/postgres-only.js';

// A burst of changes can queue far more deliveries than the senders take at once. A claim must
// then cost what it takes, not what is queued: it reads the due head of each endpoint's queue and
// counts only the deliveries in flight.

const BACKLOG = 100_000;

describePostgresOnly(`EXPLAIN of a webhook claim with ${BACKLOG} deliveries queued`, () => {
  let t: TestDatabase;
  let client: postgres.Sql;
  let db: Db;
  const captured: CapturedQuery[] = [];

  beforeAll(async () => {
    t = await createTestDatabase();
    client = postgres(t.url as string, { max: 2, onnotice: () => {} });
    const endpoints = await client<{ id: number }[]>`
      insert into webhook_endpoints (url, secret, created_by)
      select 'https://hooks.example.com/' || i, 'whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0', 'explain'
      from generate_series(1, 5) i returning id`;
    for (const { id } of endpoints) {
      await client`
        insert into webhook_deliveries (endpoint_id, event_id, message_id, next_attempt_at)
        select ${id}, i, i::text, now() - interval '1 minute'
        from generate_series(1, ${BACKLOG / endpoints.length}) i`;
    }
    // Some in flight: claimed by an instance, their lease still running.
    await client`
      update webhook_deliveries set attempts = 1, lease_until = now() + interval '1 hour',
        next_attempt_at = now() + interval '1 hour'
      where event_id <= 2`;
    await client`analyze webhook_deliveries`;
    db = capturingDb(client, captured);
  }, 120_000);

  afterAll(async () => {
    await client?.end({ timeout: 5 });
    await t?.cleanup();
  });

  it('reads the head of each queue and the deliveries in flight, not the backlog', async () => {
    captured.length = 0;
    // Run once to capture its SQL; undone, so the plan below sees the queue as seeded.
    await db
      .transaction(async (tx) => {
        // Two of each endpoint's four senders are busy: two more deliveries each.
        expect(await claim(tx, { leaseMs: 30_000, perEndpoint: 4, limit: 32 })).toHaveLength(10);
        tx.rollback();
      })
      .catch((error: Error) => {
        if (!(error instanceof TransactionRollbackError)) throw error;
      });
    const { query, params } = captured.find((c) => c.query.includes('update webhook_deliveries')) ?? {};
    const plan = await client.begin(async (tx) => {
      const [row] = await tx.unsafe(
        `explain (analyze, format json) ${query}`,
        params as postgres.ParameterOrJSON<never>[],
      );
      return (row as unknown as { 'QUERY PLAN': { Plan: PlanNode }[] })['QUERY PLAN'][0]?.Plan as PlanNode;
    });
    const deliveries = nodes(plan).filter(
      (n) => n['Relation Name'] === 'webhook_deliveries' || n['Index Name']?.startsWith('webhook_deliveries'),
    );
    const read = deliveries.reduce(
      (sum, n) =>
        sum + ((n['Actual Rows'] ?? 0) + (n['Rows Removed by Filter'] ?? 0)) * (n['Actual Loops'] ?? 1),
      0,
    );
    const shape = deliveries.map(
      (n) => `${n['Node Type']} ${n['Index Name'] ?? ''}: ${n['Actual Rows']} × ${n['Actual Loops']}`,
    );
    expect(read, shape.join('; ')).toBeLessThan(100);
  });
});
