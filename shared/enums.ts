export const TASK_STATUSES = ['pending', 'in_progress', 'review', 'completed', 'blocked'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

// Order matters: it is the sort order of `sort=priority` (the database enum keeps it too).
export const TASK_PRIORITIES = ['low', 'medium', 'high', 'critical'] as const;
export type TaskPriority = (typeof TASK_PRIORITIES)[number];

export const WORKER_TYPES = ['human', 'agent'] as const;
export type WorkerType = (typeof WORKER_TYPES)[number];

/** Who an audit row says acted: a worker, or TaskFlow itself (`system`, e.g. a lease that expired). */
export const ACTOR_TYPES = [...WORKER_TYPES, 'system'] as const;
export type ActorType = (typeof ACTOR_TYPES)[number];

export const ROLES = ['admin', 'user'] as const;
export type Role = (typeof ROLES)[number];

export const MEMBER_ROLES = ['owner', 'member'] as const;
export type MemberRole = (typeof MEMBER_ROLES)[number];

export const AUDIT_ACTIONS = [
  'created',
  'updated',
  'deleted',
  'started',
  'progressed',
  'submitted',
  'completed',
  'blocked',
  'unblocked',
  'assigned',
  'reopened',
  'project_created',
  'project_updated',
  'member_added',
  'member_removed',
  'worker_registered',
  'worker_updated',
  'released',
  'lease_expired',
  'webhook_created',
  'webhook_updated',
  'webhook_deleted',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const TASK_SORTS = ['createdAt', 'updatedAt', 'priority', 'dueDate'] as const;
export type TaskSort = (typeof TASK_SORTS)[number];

/** pending: to be tried (again); succeeded: a 2xx; failed: given up (24 h, 410, or the endpoint went). */
export const WEBHOOK_DELIVERY_STATES = ['pending', 'succeeded', 'failed'] as const;
export type WebhookDeliveryState = (typeof WEBHOOK_DELIVERY_STATES)[number];
