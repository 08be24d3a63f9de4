import { z } from 'zod';
import { NoInput } from '../../shared/schemas/common.js';
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
import { inTransaction, read } from '../trpc/transact.js';
import { listOf, noContent, toMember, toProject, toProjectDetail } from './dto.js';
import { rest } from './openapi-meta.js';

const tag = 'projects';

export const projectsRouter = router({
  create: protectedProcedure
    .meta(
      rest('POST', '/projects', tag, 'Create a project', 'The caller becomes its owner.', {
        successStatus: 201,
      }),
    )
    .input(ProjectCreateInput)
    .output(Project)
    .mutation(inTransaction(projectService.create, toProject)),

  list: protectedProcedure
    .meta(
      rest('GET', '/projects', tag, 'List projects', 'Projects the caller is a member of (all, for admins).'),
    )
    .input(NoInput)
    .output(z.array(Project))
    .query(read(projectService.list, listOf(toProject))),

  get: protectedProcedure
    .meta(rest('GET', '/projects/{slug}', tag, 'Get a project', 'The project and its members.'))
    .input(ProjectSlugInput)
    .output(ProjectDetail)
    .query(read(projectService.get, toProjectDetail)),

  update: protectedProcedure
    .meta(rest('PATCH', '/projects/{slug}', tag, 'Edit a project', 'Owner or admin.'))
    .input(ProjectUpdateInput)
    .output(Project)
    .mutation(inTransaction(projectService.update, toProject)),

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
    .mutation(inTransaction(projectService.addMember, toMember)),

  removeMember: protectedProcedure
    .meta(
      rest(
        'DELETE',
        '/projects/{slug}/members/{workerId}',
        tag,
        'Remove a member',
        'Owner or admin; the last owner stays.',
        { successStatus: 204 },
      ),
    )
    .input(MemberRemoveInput)
    .output(z.void())
    .mutation(inTransaction(projectService.removeMember, noContent)),
});
