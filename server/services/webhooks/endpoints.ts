import { randomUUID } from 'node:crypto';
import { and, asc, eq, inArray, type SQL } from 'drizzle-orm';
import { projectMembers, webhookDeliveries, webhookEndpoints } from '../../../db/schema/index.js';
import type { AuditAction } from '../../../shared/enums.js';
import type {
  WebhookCreateInput,
  WebhookListInput,
  WebhookUpdateInput,
} from '../../../shared/schemas/webhook.js';
import { conflict, invalid, notFound } from '../../errors.js';
import * as audit from '../audit-service.js';
import type { ServiceContext } from '../context.js';
import { assertManager, type EndpointRow, managedEndpoint } from './access.js';
import { newSecret } from './signing.js';
import { type UrlPolicy, urlProblem } from './ssrf.js';

export type { EndpointRow } from './access.js';

async function assertUrl(url: string, policy: UrlPolicy): Promise<void> {
  const problem = await urlProblem(url, policy);
  if (problem) throw invalid(problem);
}

// What the audit row says of a URL: its host. Its path and query may hold a receiver's own token,
// and the audit log is readable by every member of the project.
const hostOf = (url: string) => new URL(url).host;

function auditRow(
  ctx: ServiceContext,
  action: AuditAction,
  row: EndpointRow,
  context: Record<string, unknown> = {},
): Promise<void> {
  return audit.record(ctx, {
    action,
    projectSlug: row.projectSlug,
    context: { webhookId: row.id, host: hostOf(row.url), ...context },
  });
}

/** A new endpoint and its secret (shown once). The URL is checked before anything is written. */
export async function create(
  ctx: ServiceContext,
  input: WebhookCreateInput,
  policy: UrlPolicy,
): Promise<EndpointRow> {
  await assertUrl(input.url, policy);
  const project = input.project ?? null;
  await assertManager(ctx, project);
  const [row] = await ctx.tx
    .insert(webhookEndpoints)
    .values({
      projectSlug: project,
      url: input.url,
      secret: newSecret(),
      actions: input.actions ?? [],
      description: input.description ?? null,
      createdBy: ctx.actor.id,
    })
    .returning();
  if (!row) throw new Error('insert returned no row');
  await auditRow(ctx, 'webhook_created', row, { actions: row.actions });
  return row;
}

/** The endpoints the actor manages: every one for admins, those of the projects they own for others. */
export function list(ctx: ServiceContext, input: WebhookListInput): Promise<EndpointRow[]> {
  const { actor } = ctx;
  const conditions: (SQL | undefined)[] = [
    input.project === undefined ? undefined : eq(webhookEndpoints.projectSlug, input.project),
  ];
  if (actor.role !== 'admin') {
    conditions.push(
      inArray(
        webhookEndpoints.projectSlug,
        ctx.tx
          .select({ slug: projectMembers.projectSlug })
          .from(projectMembers)
          .where(and(eq(projectMembers.workerId, actor.id), eq(projectMembers.role, 'owner'))),
      ),
    );
  }
  return ctx.tx
    .select()
    .from(webhookEndpoints)
    .where(and(...conditions))
    .orderBy(asc(webhookEndpoints.id));
}

export function get(ctx: ServiceContext, input: { id: number }): Promise<EndpointRow> {
  return managedEndpoint(ctx, input.id);
}

/** Edits url, actions, description or enabled; enabling again clears why it was disabled. */
export async function update(
  ctx: ServiceContext,
  input: WebhookUpdateInput,
  policy: UrlPolicy,
): Promise<EndpointRow> {
  const fields = (['url', 'actions', 'enabled', 'description'] as const).filter(
    (key) => input[key] !== undefined,
  );
  if (fields.length === 0) throw invalid('nothing to update: give url, actions, enabled or description');
  if (input.url !== undefined) await assertUrl(input.url, policy);
  const before = await managedEndpoint(ctx, input.id, { lock: true });
  const [row] = await ctx.tx
    .update(webhookEndpoints)
    .set({
      ...(input.url === undefined ? {} : { url: input.url }),
      ...(input.actions === undefined ? {} : { actions: input.actions }),
      ...(input.description === undefined ? {} : { description: input.description }),
      ...(input.enabled === undefined
        ? {}
        : { enabled: input.enabled, disabledReason: null, failingSince: null }),
      updatedAt: new Date(),
    })
    .where(eq(webhookEndpoints.id, input.id))
    .returning();
  if (!row) throw notFound(`Webhook ${input.id} not found`);
  const changes = Object.fromEntries(
    fields
      .filter((key) => key !== 'url')
      .map((key) => [key, { before: before[key], after: row[key] }] as const),
  );
  await auditRow(ctx, 'webhook_updated', row, {
    changes: { ...changes, ...(input.url === undefined ? {} : { url: { changed: before.url !== row.url } }) },
  });
  return row;
}

export async function remove(ctx: ServiceContext, input: { id: number }): Promise<void> {
  const row = await managedEndpoint(ctx, input.id, { lock: true });
  await ctx.tx.delete(webhookEndpoints).where(eq(webhookEndpoints.id, row.id));
  await auditRow(ctx, 'webhook_deleted', row);
}

/** A new secret, shown once; the old one signs nothing from the moment this commits. */
export async function rotateSecret(ctx: ServiceContext, input: { id: number }): Promise<EndpointRow> {
  await managedEndpoint(ctx, input.id, { lock: true });
  const [row] = await ctx.tx
    .update(webhookEndpoints)
    .set({ secret: newSecret(), updatedAt: new Date() })
    .where(eq(webhookEndpoints.id, input.id))
    .returning();
  if (!row) throw notFound(`Webhook ${input.id} not found`);
  await auditRow(ctx, 'webhook_updated', row, { changes: { secret: { rotated: true } } });
  return row;
}

/** Queues a `ping` to the endpoint; it goes out like any delivery (signed, retried, listed). */
export async function ping(
  ctx: ServiceContext,
  input: { id: number },
): Promise<{ deliveryId: number; messageId: string }> {
  const endpoint = await managedEndpoint(ctx, input.id);
  if (!endpoint.enabled) throw conflict(`Webhook ${input.id} is disabled; enable it first`);
  const messageId = `ping_${randomUUID()}`;
  const [row] = await ctx.tx
    .insert(webhookDeliveries)
    .values({
      endpointId: endpoint.id,
      messageId,
      payload: {
        action: 'ping',
        webhookId: endpoint.id,
        projectSlug: endpoint.projectSlug,
        actorId: ctx.actor.id,
        at: new Date().toISOString(),
      },
    })
    .returning({ id: webhookDeliveries.id });
  if (!row) throw new Error('insert returned no row');
  return { deliveryId: row.id, messageId };
}
