import { and, eq, sql } from 'drizzle-orm';
import { type Db, rowsOf } from '../../../db/client.js';
import { auditLog, webhookAttempts, webhookDeliveries, webhookEndpoints } from '../../../db/schema/index.js';
import { nextAttemptAt, type RetryPolicy } from './backoff.js';
import type { SendResult } from './sender.js';

/** Notified by the audit trigger when a change queued a delivery (migration 0011), and by `notifySenders`. */
export const WEBHOOKS_CHANNEL = 'taskflow_webhooks';

/** Wakes the senders of every instance on the database, e.g. for a ping queued where none run. */
export async function notifySenders(db: Db): Promise<void> {
  await db.execute(sql`select pg_notify(${WEBHOOKS_CHANNEL}, '')`);
}

/** A delivery taken by this instance for one attempt, with where and how to send it. */
export interface Claimed {
  id: number;
  endpointId: number;
  eventId: number | null;
  messageId: string;
  payload: Record<string, unknown> | null;
  /** The number of this attempt (1 for the first): also the claim's token. */
  attempts: number;
  createdAt: Date;
  url: string;
  secret: string;
}

export interface ClaimOptions {
  /** How long the claim holds: longer than an attempt can take, so it never lapses under a live sender. */
  leaseMs: number;
  /** Attempts in flight per endpoint, over all instances. */
  perEndpoint: number;
  limit: number;
}

/**
 * Takes up to `limit` due deliveries for this instance. Each endpoint row is locked for the claim and
 * skipped when another instance holds it, so instances never wait on each other; the claim pushes
 * `next_attempt_at` past a lease, so the row is due again only if this instance dies with it (then
 * another one retries it). The UPDATE checks the row is still due: of two claims that read it, the
 * second finds it taken. An endpoint with `perEndpoint` attempts in flight gets no more, so a slow
 * one holds only that many of an instance's senders.
 */
export async function claim(db: Db, options: ClaimOptions): Promise<Claimed[]> {
  const lease = sql`now() + ${options.leaseMs} * interval '1 millisecond'`;
  const result = await db.execute(sql`
    update webhook_deliveries d
    set attempts = d.attempts + 1, next_attempt_at = ${lease}, lease_until = ${lease}
    from (
      select c.id, e.url, e.secret from webhook_endpoints e
      cross join lateral (
        select x.id from webhook_deliveries x
        where x.endpoint_id = e.id and x.state = 'pending' and x.next_attempt_at <= now()
        order by x.next_attempt_at, x.id
        limit greatest(0, ${options.perEndpoint} - (select count(*) from webhook_deliveries f
          where f.endpoint_id = e.id and f.state = 'pending' and f.lease_until > now()))
      ) c
      where e.enabled
      limit ${options.limit}
      for no key update of e skip locked
    ) picked
    where d.id = picked.id and d.state = 'pending' and d.next_attempt_at <= now()
    returning d.id, d.endpoint_id, d.event_id, d.message_id, d.payload, d.attempts, d.created_at,
      picked.url, picked.secret`);
  return rowsOf(result).map((raw) => {
    const row = raw as Record<string, unknown>;
    return {
      id: Number(row.id),
      endpointId: Number(row.endpoint_id),
      eventId: row.event_id === null ? null : Number(row.event_id),
      messageId: String(row.message_id),
      payload: (row.payload as Record<string, unknown> | null) ?? null,
      attempts: Number(row.attempts),
      createdAt: new Date(row.created_at as string),
      url: String(row.url),
      secret: String(row.secret),
    };
  });
}

/** Whether any endpoint is enabled: until one is, a worker need not listen for changes. */
export async function anyEnabledEndpoint(db: Db): Promise<boolean> {
  const rows = await db
    .select({ id: webhookEndpoints.id })
    .from(webhookEndpoints)
    .where(eq(webhookEndpoints.enabled, true))
    .limit(1);
  return rows.length > 0;
}

export const isSuccess = (status: number | null): boolean => status !== null && status >= 200 && status < 300;

/**
 * Writes what an attempt without a 2xx got, atomically: the attempt row, the delivery's new state
 * (failed, or due again after the back-off), and the endpoint's health (410, or failing for as long
 * as deliveries are retried, disables it and says why). Nothing is written when the claim was lost
 * (this instance stalled past its lease and another one took the delivery over). A 2xx goes to
 * `settleSucceeded`.
 */
export async function settleFailed(
  db: Db,
  delivery: Claimed,
  sent: SendResult & { at: Date },
  policy: RetryPolicy,
): Promise<void> {
  const now = new Date();
  const gone = sent.statusCode === 410;
  const next = gone ? null : nextAttemptAt(policy, delivery.attempts, delivery.createdAt, now);
  const state = next ? 'pending' : 'failed';
  await db.transaction(async (tx) => {
    // The endpoint first, then the delivery: the order a delete of the endpoint (cascading to its
    // deliveries) takes them in, so the two wait for each other instead of deadlocking.
    const [endpointRow] = await tx
      .select({ id: webhookEndpoints.id })
      .from(webhookEndpoints)
      .where(eq(webhookEndpoints.id, delivery.endpointId))
      .for('no key update');
    if (!endpointRow) return;
    const [held] = await tx
      .update(webhookDeliveries)
      .set({ state, nextAttemptAt: next ?? now, leaseUntil: null })
      .where(
        and(
          eq(webhookDeliveries.id, delivery.id),
          eq(webhookDeliveries.attempts, delivery.attempts),
          eq(webhookDeliveries.state, 'pending'),
        ),
      )
      .returning({ id: webhookDeliveries.id });
    if (!held) return;
    await tx.insert(webhookAttempts).values({
      deliveryId: delivery.id,
      endpointId: delivery.endpointId,
      attempt: delivery.attempts,
      at: sent.at,
      statusCode: sent.statusCode,
      durationMs: sent.durationMs,
      error: sent.error ?? `answered HTTP ${sent.statusCode}`,
      nextAttemptAt: next,
    });
    const [endpoint] = await tx
      .update(webhookEndpoints)
      .set({
        failingSince: sql`coalesce(${webhookEndpoints.failingSince}, ${sent.at.toISOString()}::timestamptz)`,
      })
      .where(eq(webhookEndpoints.id, delivery.endpointId))
      .returning({ failingSince: webhookEndpoints.failingSince });
    const failingFor = endpoint?.failingSince ? now.getTime() - endpoint.failingSince.getTime() : 0;
    if (gone)
      await disable(tx, delivery.endpointId, `the receiver answered 410 Gone at ${now.toISOString()}`);
    else if (!next && failingFor >= policy.giveUpAfterMs) {
      const since = endpoint?.failingSince?.toISOString() ?? '';
      await disable(tx, delivery.endpointId, `every attempt failed for 24 hours (since ${since})`);
    }
  });
}

/** A 2xx to be recorded: the claimed delivery and what its attempt got. */
export interface Succeeded {
  delivery: Claimed;
  sent: SendResult & { at: Date };
}

/**
 * Records 2xx answers, nearly every attempt, as one statement for all of them (one round trip and
 * one commit, however many): the endpoints locked first, in id order (their one-time check runs
 * before the deliveries are read), then each delivery done, its attempt row, and its endpoint's
 * health cleared. A delivery whose claim was lost is skipped.
 */
export async function settleSucceeded(db: Db, batch: readonly Succeeded[], now: Date): Promise<void> {
  if (batch.length === 0) return;
  const rows = sql.join(
    batch.map(
      ({ delivery, sent }) =>
        sql`(${delivery.id}::bigint, ${delivery.attempts}::int, ${delivery.endpointId}::bigint,
          ${sent.at.toISOString()}::timestamptz, ${sent.statusCode}::int, ${sent.durationMs}::int,
          ${sent.error ?? null}::text)`,
    ),
    sql`, `,
  );
  await db.execute(sql`
    with input (id, attempts, endpoint_id, at, status_code, duration_ms, error) as (values ${rows}),
    endpoint as (
      select id from webhook_endpoints where id in (select endpoint_id from input)
      order by id for no key update
    ), held as (
      update webhook_deliveries d
      set state = 'succeeded', next_attempt_at = ${now.toISOString()}::timestamptz, lease_until = null
      from input i
      where d.id = i.id and d.attempts = i.attempts and d.state = 'pending'
        and i.endpoint_id in (select id from endpoint)
      returning i.*
    ), attempt as (
      insert into webhook_attempts
        (delivery_id, endpoint_id, attempt, at, status_code, duration_ms, error, next_attempt_at)
      select id, endpoint_id, attempts, at, status_code, duration_ms, error, null from held
    )
    update webhook_endpoints set failing_since = null
    where id in (select endpoint_id from held) and failing_since is not null`);
}

/** Disables an endpoint on TaskFlow's own account; the audit row (by `system`) tells its owners why. */
async function disable(tx: Db, endpointId: number, reason: string): Promise<void> {
  const [row] = await tx
    .update(webhookEndpoints)
    .set({ enabled: false, disabledReason: reason, updatedAt: new Date() })
    .where(and(eq(webhookEndpoints.id, endpointId), eq(webhookEndpoints.enabled, true)))
    .returning({ projectSlug: webhookEndpoints.projectSlug });
  if (!row) return;
  await tx.insert(auditLog).values({
    actorId: 'system',
    actorType: 'system',
    action: 'webhook_updated',
    projectSlug: row.projectSlug,
    context: { webhookId: endpointId, changes: { enabled: { before: true, after: false } }, reason },
  });
}

/** Finished deliveries (and their attempts) are kept this long for `deliveries`, then dropped. */
export const KEEP_FINISHED_MS = 30 * 24 * 3_600_000;

/** Drops up to `limit` finished deliveries older than KEEP_FINISHED_MS, so the queue stays small. */
export async function purgeFinished(db: Db, limit = 10_000): Promise<void> {
  await db.execute(sql`
    delete from webhook_deliveries where id in (
      select id from webhook_deliveries
      where state <> 'pending' and created_at < now() - ${KEEP_FINISHED_MS} * interval '1 millisecond'
      limit ${limit})`);
}
