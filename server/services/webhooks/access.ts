import { and, eq } from 'drizzle-orm';
import { projectMembers, projects, webhookEndpoints } from '../../../db/schema/index.js';
import { forbidden, notFound } from '../../errors.js';
import type { ServiceContext } from '../context.js';
import { projectVisibleTo } from '../visibility.js';

export type EndpointRow = typeof webhookEndpoints.$inferSelect;

/**
 * Webhooks are managed by a project's owners and admins. A project the actor cannot see is 404; a
 * member who is not an owner may see the project but not its webhooks (403). An endpoint without a
 * project receives every event, so only admins manage those.
 */
export async function assertManager(ctx: ServiceContext, slug: string | null): Promise<void> {
  const { tx, actor } = ctx;
  if (slug === null) {
    if (actor.role !== 'admin') throw forbidden('Only an admin may manage a webhook for every project');
    return;
  }
  const [project] = await tx
    .select({ slug: projects.slug })
    .from(projects)
    .where(and(eq(projects.slug, slug), projectVisibleTo(actor)));
  if (!project) throw notFound(`Project ${slug} not found`);
  if (actor.role === 'admin') return;
  const [member] = await tx
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, slug), eq(projectMembers.workerId, actor.id)));
  if (member?.role !== 'owner') {
    throw forbidden(`Only an owner of project ${slug} or an admin may manage its webhooks`);
  }
}

/** The endpoint, if the actor manages it: 404 when they may not see it, 403 when they may not manage it. */
export async function managedEndpoint(
  ctx: ServiceContext,
  id: number,
  options: { lock?: boolean } = {},
): Promise<EndpointRow> {
  const query = ctx.tx.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id));
  const [row] = options.lock ? await query.for('update') : await query;
  if (!row) throw notFound(`Webhook ${id} not found`);
  try {
    await assertManager(ctx, row.projectSlug);
  } catch (error) {
    // An every-project endpoint is not for non-admins to know of.
    if (row.projectSlug === null) throw notFound(`Webhook ${id} not found`);
    throw error;
  }
  return row;
}
