import { z } from 'zod';
import { MEMBER_ROLES } from '../enums.js';
import { IdempotencyKey, Instant, ProjectSlug, text, WorkerId } from './common.js';

export const MemberRole = z.enum(MEMBER_ROLES);

export const Project = z
  .object({
    slug: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    ownerId: z.string(),
    createdAt: Instant,
  })
  .meta({ id: 'Project' });
export type Project = z.infer<typeof Project>;

export const ProjectMember = z
  .object({ projectSlug: z.string(), workerId: z.string(), role: MemberRole, createdAt: Instant })
  .meta({ id: 'ProjectMember' });
export type ProjectMember = z.infer<typeof ProjectMember>;

export const ProjectDetail = Project.extend({ members: z.array(ProjectMember) }).meta({
  id: 'ProjectDetail',
});
export type ProjectDetail = z.infer<typeof ProjectDetail>;

export const ProjectCreateInput = z.strictObject({
  slug: ProjectSlug,
  name: text(1, 100).meta({ example: 'Website' }),
  description: text(0, 2000).nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type ProjectCreateInput = z.infer<typeof ProjectCreateInput>;

export const ProjectUpdateInput = z.strictObject({
  slug: ProjectSlug,
  name: text(1, 100).optional(),
  description: text(0, 2000).nullable().optional(),
  idempotencyKey: IdempotencyKey.optional(),
});
export type ProjectUpdateInput = z.infer<typeof ProjectUpdateInput>;

export const ProjectSlugInput = z.strictObject({ slug: ProjectSlug });

export const MemberInput = z.strictObject({
  slug: ProjectSlug,
  workerId: WorkerId,
  role: MemberRole.default('member'),
  idempotencyKey: IdempotencyKey.optional(),
});
export type MemberInput = z.input<typeof MemberInput>;

export const MemberRemoveInput = z.strictObject({ slug: ProjectSlug, workerId: WorkerId });
