import { sql } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { Db } from '../../../db/client.js';
import type { ServiceContext } from '../context.js';
import { reusableStatement } from '../reusable-statement.js';
import { rowsOf } from './subtasks.js';

// Leases end in one of three ways: the holder renews them (heartbeat, progress), leaves in_progress,
// or lets them pass. A passed lease is returned to the queue by `sweepExpiredLeases`, which every
// instance runs each second and every claimNext runs first; one `lease_expired` row, by the actor
// `system`, says so.

/** The audit row of an expired lease, as SQL over rows with `id`, `project_slug`, `assigned_to`, `lease_expires_at`. */
const expiredAuditInsert = (from: string) =>
  sql.raw(`insert into audit_log (actor_id, actor_type, action, task_id, project_slug, context)
    select 'system', 'system', 'lease_expired', id, project_slug,
      jsonb_build_object('from', 'in_progress', 'to', 'pending', 'assignee', assigned_to,
        'leaseExpiredAt', to_char(lease_expires_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
    from ${from}`);

// Every claim runs it first, so it is built once and runs as a prepared statement.
const sweep = reusableStatement<{ n: number }, { limit: number }>(() => ({
  toSQL: () =>
    new PgDialect().sqlToQuery(sql`
      with expired as (
        select id, assigned_to, lease_expires_at from tasks
        where status = 'in_progress' and lease_expires_at <= now()
        order by lease_expires_at
        limit ${sql.placeholder('limit')}
        for update skip locked
      ), swept as (
        update tasks set status = 'pending', assigned_to = null, lease_expires_at = null,
          lease_seconds = null, version = tasks.version + 1, updated_at = now()
        from expired where tasks.id = expired.id
        returning tasks.id, tasks.project_slug, expired.assigned_to, expired.lease_expires_at
      ), audited as (${expiredAuditInsert('swept')} returning 1)
      select count(*)::int as n from audited`),
}));

/**
 * Returns tasks whose lease has passed to pending, unassigned (progress kept), and audits each, in
 * one statement. Rows another instance is sweeping are skipped, not waited for, so any number of
 * instances may sweep at once and each lapse is audited once. Returns how many it swept.
 */
export async function sweepExpiredLeases(db: Db, limit = 500): Promise<number> {
  const [row] = rowsOf(await sweep(db, { limit })) as { n: number }[];
  return Number(row?.n ?? 0);
}

/**
 * Whether the actor held the task until its lease passed and has not claimed it since: what tells
 * a former holder LEASE_EXPIRED rather than "somebody else's task".
 */
export async function lostToExpiry(ctx: ServiceContext, taskId: number): Promise<boolean> {
  const result = await ctx.tx.execute(sql`
    select exists (
      select 1 from audit_log lapse
      where lapse.task_id = ${taskId} and lapse.action = 'lease_expired'
        and lapse.context ->> 'assignee' = ${ctx.actor.id}
        and lapse.id > coalesce((select max(claim.id) from audit_log claim
          where claim.task_id = ${taskId} and claim.action = 'started' and claim.actor_id = ${ctx.actor.id}), 0)
    ) as lost`);
  const [row] = rowsOf(result) as { lost: boolean }[];
  return row?.lost === true;
}
