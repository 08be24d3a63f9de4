import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { Db } from '../../db/client.js';
import { projectMembers, projects, workers } from '../../db/schema/index.js';
import type { MemberRole } from '../../shared/enums.js';
import type { ProjectCreateInput, ProjectUpdateInput } from '../../shared/schemas/project.js';
import type { Actor } from '../auth/actor.js';
import { conflict, forbidden, invalid, notFound } from '../errors.js';
import * as audit from './audit-service.js';
import { projectVisibleTo } from './visibility.js';

export type ProjectRow = typeof projects.$inferSelect;
export type MemberRow = typeof projectMembers.$inferSelect;

export async function create(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: ProjectCreateInput,
): Promise<ProjectRow> {
  const [row] = await tx
    .insert(projects)
    .values({ slug: input.slug, name: input.name, description: input.description ?? null, ownerId: actor.id })
    .onConflictDoNothing()
    .returning();
  if (!row) throw conflict(`Project ${input.slug} already exists`);
  await tx.insert(projectMembers).values({ projectSlug: row.slug, workerId: actor.id, role: 'owner' });
  await audit.record(tx, actor, requestId, {
    action: 'project_created',
    projectSlug: row.slug,
    context: { name: row.name },
  });
  return row;
}

export function list(db: Db, actor: Actor): Promise<ProjectRow[]> {
  return db.select().from(projects).where(projectVisibleTo(actor)).orderBy(asc(projects.slug));
}

async function visible(db: Db, actor: Actor, slug: string): Promise<ProjectRow> {
  const [row] = await db
    .select()
    .from(projects)
    .where(and(eq(projects.slug, slug), projectVisibleTo(actor)));
  if (!row) throw notFound(`Project ${slug} not found`);
  return row;
}

export async function get(
  db: Db,
  actor: Actor,
  slug: string,
): Promise<ProjectRow & { members: MemberRow[] }> {
  const project = await visible(db, actor, slug);
  const members = await db
    .select()
    .from(projectMembers)
    .where(eq(projectMembers.projectSlug, slug))
    .orderBy(asc(projectMembers.workerId));
  return { ...project, members };
}

/**
 * Owners and admins manage a project; members may look but not touch. The project row is locked
 * before the role is read: changes to one project are serialised, so the check sees every
 * membership change committed before it (an owner removed a moment ago is no longer one) and none
 * can land between the check and the change ("keep one owner" holds under concurrency too).
 */
async function assertManager(tx: Db, actor: Actor, slug: string): Promise<void> {
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

export async function update(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: ProjectUpdateInput,
): Promise<ProjectRow> {
  if (input.name === undefined && input.description === undefined) {
    throw invalid('nothing to update: give name or description');
  }
  await assertManager(tx, actor, input.slug);
  const before = await visible(tx, actor, input.slug);
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
  await audit.record(tx, actor, requestId, {
    action: 'project_updated',
    projectSlug: row.slug,
    context: { changes },
  });
  return row;
}

async function ownerCount(db: Db, slug: string): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, slug), eq(projectMembers.role, 'owner')));
  return row?.n ?? 0;
}

export async function addMember(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: { slug: string; workerId: string; role: MemberRole },
): Promise<MemberRow> {
  await assertManager(tx, actor, input.slug);
  const [worker] = await tx.select({ id: workers.id }).from(workers).where(eq(workers.id, input.workerId));
  if (!worker) throw notFound(`Worker ${input.workerId} not found`);
  const [existing] = await tx
    .select({ role: projectMembers.role })
    .from(projectMembers)
    .where(and(eq(projectMembers.projectSlug, input.slug), eq(projectMembers.workerId, input.workerId)));
  if (existing?.role === 'owner' && input.role === 'member' && (await ownerCount(tx, input.slug)) <= 1) {
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
  await audit.record(tx, actor, requestId, {
    action: 'member_added',
    projectSlug: input.slug,
    context: { workerId: input.workerId, role: input.role, previousRole: existing?.role ?? null },
  });
  return row;
}

export async function removeMember(
  tx: Db,
  actor: Actor,
  requestId: string,
  input: { slug: string; workerId: string },
): Promise<void> {
  await assertManager(tx, actor, input.slug);
  const [row] = await tx
    .delete(projectMembers)
    .where(and(eq(projectMembers.projectSlug, input.slug), eq(projectMembers.workerId, input.workerId)))
    .returning();
  if (!row) throw notFound(`Worker ${input.workerId} is not a member of project ${input.slug}`);
  if (row.role === 'owner' && (await ownerCount(tx, input.slug)) === 0) {
    throw conflict(`Project ${input.slug} must keep at least one owner`);
  }
  await audit.record(tx, actor, requestId, {
    action: 'member_removed',
    projectSlug: input.slug,
    context: { workerId: input.workerId, role: row.role },
  });
}
