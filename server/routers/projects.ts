import { z } from 'zod';
import {
  MemberInput,
  MemberRemoveInput,
  Project,
  ProjectCreateInput,
  ProjectDetail,
  ProjectMember,
  ProjectSlugInput,
  ProjectUpdateInput,
} from '../../shared/schemas/project.js';
import * as projectService from '../services/project-service.js';
import { protectedProcedure, router } from '../trpc/init.js';
import { transact } from '../trpc/transact.js';
import { toMember, toProject, toProjectDetail } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'projects';

export const projectsRouter = router({
  create: protectedProcedure
    .meta(rest('POST', '/projects', tag, 'Create a project', 'The caller becomes its owner.'))
    .input(ProjectCreateInput)
    .output(Project)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toProject(await projectService.create(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  list: protectedProcedure
    .meta(
      rest('GET', '/projects', tag, 'List projects', 'Projects the caller is a member of (all, for admins).'),
    )
    .input(z.strictObject({}))
    .output(z.array(Project))
    .query(async ({ ctx }) => (await projectService.list(ctx.db, ctx.actor)).map(toProject)),

  get: protectedProcedure
    .meta(rest('GET', '/projects/{slug}', tag, 'Get a project', 'The project and its members.'))
    .input(ProjectSlugInput)
    .output(ProjectDetail)
    .query(async ({ ctx, input }) =>
      toProjectDetail(await projectService.get(ctx.db, ctx.actor, input.slug)),
    ),

  update: protectedProcedure
    .meta(rest('PATCH', '/projects/{slug}', tag, 'Edit a project', 'Owner or admin.'))
    .input(ProjectUpdateInput)
    .output(Project)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toProject(await projectService.update(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  addMember: protectedProcedure
    .meta(
      rest(
        'PUT',
        '/projects/{slug}/members/{workerId}',
        tag,
        'Add or change a member',
        'Owner or admin; sets the role (default member).',
      ),
    )
    .input(MemberInput)
    .output(ProjectMember)
    .mutation(({ ctx, input }) =>
      transact(ctx, input, async (tx) =>
        toMember(await projectService.addMember(tx, ctx.actor, ctx.requestId, input)),
      ),
    ),

  removeMember: protectedProcedure
    .meta(
      rest(
        'DELETE',
        '/projects/{slug}/members/{workerId}',
        tag,
        'Remove a member',
        'Owner or admin; the last owner stays.',
      ),
    )
    .input(MemberRemoveInput)
    .output(z.void())
    .mutation(({ ctx, input }) =>
      transact(ctx, input, (tx) => projectService.removeMember(tx, ctx.actor, ctx.requestId, input)),
    ),
});
