import { z } from 'zod';
import { ACTOR_TYPES, AUDIT_ACTIONS } from '../enums.js';
import { Cursor, IdParam, Instant, Limit, ProjectSlug, Timestamp, WorkerId } from './common.js';

export const AuditAction = z.enum(AUDIT_ACTIONS);

export const AuditEntry = z
  .object({
    id: z.int(),
    at: Instant,
    actorId: z.string(),
    actorType: z.enum(ACTOR_TYPES),
    action: AuditAction,
    taskId: z.int().nullable(),
    projectSlug: z.string().nullable(),
    context: z.record(z.string(), z.unknown()),
    requestId: z.string().nullable(),
  })
  .meta({ id: 'AuditEntry' });
export type AuditEntry = z.infer<typeof AuditEntry>;

export const AuditListInput = z.strictObject({
  taskId: IdParam.optional(),
  project: ProjectSlug.optional(),
  actorId: WorkerId.optional(),
  action: z.array(AuditAction).max(AUDIT_ACTIONS.length).optional(),
  since: Timestamp.optional(),
  until: Timestamp.optional(),
  limit: Limit,
  cursor: Cursor.optional(),
});
export type AuditListInput = z.input<typeof AuditListInput>;
export type AuditListQuery = z.output<typeof AuditListInput>;

export const AuditPage = z
  .object({ items: z.array(AuditEntry), nextCursor: z.string().nullable() })
  .meta({ id: 'AuditPage' });
export type AuditPage = z.infer<typeof AuditPage>;
