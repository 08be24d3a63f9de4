export { auditLog } from './audit-log.js';
export { actorType, auditAction, memberRole, taskPriority, taskStatus, workerType } from './enums.js';
export { idempotencyKeys } from './idempotency-keys.js';
export { projectMembers, projects } from './projects.js';
export { tasks } from './tasks.js';
export { webhookAttempts, webhookDeliveries, webhookDeliveryState, webhookEndpoints } from './webhooks.js';
export { workers } from './workers.js';
