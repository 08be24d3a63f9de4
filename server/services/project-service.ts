import { and, asc, count, eq, sql } from 'drizzle-orm';
import { projectMembers, projects, workers } from '../../db/schema/index.js';
import type { MemberRole } from '../../shared/enums.js';
import type { ProjectCreateInput, ProjectUpdateInput } from '../../shared/schemas/project.js';
import { conflict, forbidden, invalid, notFound } from '../errors.js';
import * as audit from './audit-service.js';
import type { ServiceContext } from './context.js';
import { projectVisibleTo } from './visibility.js';

export type ProjectRow = typeof projects.$inferSelect;
export type MemberRow = typeof projectMembers.$inferSelect;

/** The caller becomes its owner. */
export async function create(ctx: ServiceContext, input: ProjectCreateInput): Promise<ProjectRow> {
  const { tx, actor } = ctx;
  const [row] = await tx
    .insert(projects)
    .values({ slug: input.slug, name: input.name, description: input.description ?? null, ownerId: actor.id })
    .onConflictDoNothing()
    .returning();
  if (!row) throw conflict(`Project ${input.slug} already exists`);
  await tx.insert(projectMembers).values({ projectSlug: row.slug, workerId: actor.id, role: 'owner' });
  await audit.record(ctx, {
    action: 'project_created',
    projectSlug: row.slug,
    context: { name: row.name },
  });
  return row;
}

export function list(ctx: ServiceContext): Promise<ProjectRow[]> {
  return ctx.tx.select().from(projects).where(projectVisibleTo(ctx.actor)).orderBy(asc(projects.slug));
}

async function visible(ctx: ServiceContext, slug: string): Promise<ProjectRow> {
  const [row] = await ctx.tx
    .select()
    .from(projects)
    .where(and(eq(projects.slug, slug), projectVisibleTo(ctx.actor)));
  if (!row) throw notFound(`Project ${slug} not found`);
  return row;
}

/** The project and its members. */
export async function get(
  ctx: ServiceContext,
  input: { slug: string },
): Promise<ProjectRow & { members: MemberRow[] }> {
  const project = await visible(ctx, input.slug);
  const members = await ctx.tx
    .select()
    .from(projectMembers)
    .where(eq(projectMembers.projectSlug, input.slug))
    .orderBy(asc(projectMembers.workerId));
  return { ...project, members };
}

/**
 * Owners and admins manage a project; members may look but not touch. The project row is locked
 * before the role is read: changes to one project are serialised, so the check sees every
 * membership change committed before it (an owner removed a moment ago is no longer one) and none
 * can land between the check and the change ("keep one owner" holds under concurrency too).
 */
async function assertManager(ctx: ServiceContext, slug: string): Promise<void> {
  const { tx, actor } = ctx;
  const [locked] = await tx
    .select({ slug: projects.slug })
    .from(projects)
    .where(and(eq(projects.slug, slug), projectVisibleTo(actor)))
    .for('update');
  if (!locked) throw notFound(`Project ${slug} not found`);
  if (actor.role === 'admin') return;
  const [member] = await tx
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, slug), eq(projectMembers.workerId, actor.id)));
  if (member?.role !== 'owner') throw forbidden(`Only an owner of project ${slug} or an admin may change it`);
}

export async function update(ctx: ServiceContext, input: ProjectUpdateInput): Promise<ProjectRow> {
  const { tx } = ctx;
  if (input.name === undefined && input.description === undefined) {
    throw invalid('nothing to update: give name or description');
  }
  await assertManager(ctx, input.slug);
  const before = await visible(ctx, input.slug);
  const [row] = await tx
    .update(projects)
    .set({
      ...(input.name === undefined ? {} : { name: input.name }),
      ...(input.description === undefined ? {} : { description: input.description }),
    })
    .where(eq(projects.slug, input.slug))
    .returning();
  if (!row) throw notFound(`Project ${input.slug} not found`);
  const changes: Record<string, { before: unknown; after: unknown }> = {};
  if (input.name !== undefined && before.name !== row.name)
    changes.name = { before: before.name, after: row.name };
  if (input.description !== undefined && before.description !== row.description) {
    changes.description = { before: before.description, after: row.description };
  }
  await audit.record(ctx, {
    action: 'project_updated',
    projectSlug: row.slug,
    context: { changes },
  });
  return row;
}

async function ownerCount(ctx: ServiceContext, slug: string): Promise<number> {
  const [row] = await ctx.tx
    .select({ n: count() })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, slug), eq(projectMembers.role, 'owner')));
  return row?.n ?? 0;
}

/** Adds a member or changes their role; a project keeps at least one owner. */
export async function addMember(
  ctx: ServiceContext,
  input: { slug: string; workerId: string; role: MemberRole },
): Promise<MemberRow> {
  const { tx } = ctx;
  await assertManager(ctx, input.slug);
  const [worker] = await tx.select({ id: workers.id }).from(workers).where(eq(workers.id, input.workerId));
  if (!worker) throw notFound(`Worker ${input.workerId} not found`);
  const [existing] = await tx
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, input.slug), eq(projectMembers.workerId, input.workerId)));
  if (existing?.role === 'owner' && input.role === 'member' && (await ownerCount(ctx, input.slug)) <= 1) {
    throw conflict(`Project ${input.slug} must keep at least one owner`);
  }
  const [row] = await tx
    .insert(projectMembers)
    .values({ projectSlug: input.slug, workerId: input.workerId, role: input.role })
    .onConflictDoUpdate({
      target: [projectMembers.projectSlug, projectMembers.workerId],
      set: { role: sql`excluded.role` },
    })
    .returning();
  if (!row) throw new Error('upsert returned no row');
  await audit.record(ctx, {
    action: 'member_added',
    projectSlug: input.slug,
    context: { workerId: input.workerId, role: input.role, previousRole: existing?.role ?? null },
  });
  return row;
}

/** Removes a member; the last owner stays. */
export async function removeMember(
  ctx: ServiceContext,
  input: { slug: string; workerId: string },
): Promise<void> {
  await assertManager(ctx, input.slug);
  const [row] = await ctx.tx
    .delete(projectMembers)
    .where(and(eq(projectMembers.projectSlug, input.slug), eq(projectMembers.workerId, input.workerId)))
    .returning();
  if (!row) throw notFound(`Worker ${input.workerId} is not a member of project ${input.slug}`);
  if (row.role === 'owner' && (await ownerCount(ctx, input.slug)) === 0) {
    throw conflict(`Project ${input.slug} must keep at least one owner`);
  }
  await audit.record(ctx, {
    action: 'member_removed',
    projectSlug: input.slug,
    context: { workerId: input.workerId, role: row.role },
  });
}
