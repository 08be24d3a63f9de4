import { pgEnum } from 'drizzle-orm/pg-core';
import {
  ACTOR_TYPES,
  AUDIT_ACTIONS,
  MEMBER_ROLES,
  TASK_PRIORITIES,
  TASK_STATUSES,
  WORKER_TYPES,
} from '../../shared/enums.js';

export const taskStatus = pgEnum('task_status', TASK_STATUSES);
export const taskPriority = pgEnum('task_priority', TASK_PRIORITIES);
export const workerType = pgEnum('worker_type', WORKER_TYPES);
export const actorType = pgEnum('actor_type', ACTOR_TYPES);
export const memberRole = pgEnum('member_role', MEMBER_ROLES);
export const auditAction = pgEnum('audit_action', AUDIT_ACTIONS);
