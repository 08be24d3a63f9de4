import type { AuditEntry } from '../../shared/schemas/audit.js';
import type { TaskEvent } from '../../shared/schemas/event.js';
import type { Project, ProjectDetail, ProjectMember } from '../../shared/schemas/project.js';
import type { Task } from '../../shared/schemas/task.js';
import type {
  WebhookAttempt,
  WebhookEndpoint,
  WebhookEndpointWithSecret,
} from '../../shared/schemas/webhook.js';
import type { Me, Worker } from '../../shared/schemas/worker.js';
import type { AuditRow } from '../services/audit-service.js';
import type { EventRow } from '../services/events/index.js';
import type { MemberRow, ProjectRow } from '../services/project-service.js';
import type { TaskRow } from '../services/tasks/index.js';
import type { AttemptRow } from '../services/webhooks/attempts.js';
import type { EndpointRow } from '../services/webhooks/endpoints.js';
import type { WorkerRow } from '../services/worker-service.js';

// Rows carry Dates; the wire carries ISO strings, identical over tRPC and REST.
const iso = (date: Date) => date.toISOString();
const isoOrNull = (date: Date | null) => (date ? date.toISOString() : null);

/** Maps each row of a list. */
export const listOf =
  <R, O>(map: (row: R) => O) =>
  (rows: R[]): O[] =>
    rows.map(map);

/** Maps each row of a keyset page. */
export const pageOf =
  <R, O>(map: (row: R) => O) =>
  (page: { items: R[]; nextCursor: string | null }): { items: O[]; nextCursor: string | null } => ({
    items: page.items.map(map),
    nextCursor: page.nextCursor,
  });

/** An operation that answers with no body (REST 204). */
export const noContent = (): void => undefined;

export function toTask(row: TaskRow): Task {
  return {
    id: row.id,
    title: row.title,
    description: row.description,
    status: row.status,
    priority: row.priority,
    progressPercent: row.progressPercent,
    assignedTo: row.assignedTo,
    projectSlug: row.projectSlug,
    parentId: row.parentId,
    labels: row.labels,
    dueDate: isoOrNull(row.dueDate),
    blockedReason: row.blockedReason,
    createdBy: row.createdBy,
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
    completedAt: isoOrNull(row.completedAt),
    version: row.version,
    requiredCapabilities: row.requiredCapabilities,
    leaseExpiresAt: isoOrNull(row.leaseExpiresAt),
  };
}

export function toProject(row: ProjectRow): Project {
  return {
    slug: row.slug,
    name: row.name,
    description: row.description,
    ownerId: row.ownerId,
    createdAt: iso(row.createdAt),
  };
}

export function toMember(row: MemberRow): ProjectMember {
  return {
    projectSlug: row.projectSlug,
    workerId: row.workerId,
    role: row.role,
    createdAt: iso(row.createdAt),
  };
}

export function toProjectDetail(row: ProjectRow & { members: MemberRow[] }): ProjectDetail {
  return { ...toProject(row), members: row.members.map(toMember) };
}

export function toWorker(row: WorkerRow): Worker {
  return {
    id: row.id,
    type: row.type,
    name: row.name,
    email: row.email,
    capabilities: row.capabilities,
    createdAt: iso(row.createdAt),
    lastSeenAt: iso(row.lastSeenAt),
  };
}

export function toMe(row: WorkerRow & { role: Me['role'] }): Me {
  return { ...toWorker(row), role: row.role };
}

export function toAuditEntry(row: AuditRow): AuditEntry {
  return {
    id: row.id,
    at: iso(row.at),
    actorId: row.actorId,
    actorType: row.actorType,
    action: row.action,
    taskId: row.taskId,
    projectSlug: row.projectSlug,
    context: row.context,
    requestId: row.requestId,
  };
}

export function toEvent(row: EventRow): TaskEvent {
  return { ...toAuditEntry(row.entry), task: row.task ? toTask(row.task) : null };
}

export function toWebhook(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    project: row.projectSlug,
    url: row.url,
    actions: row.actions,
    description: row.description,
    enabled: row.enabled,
    disabledReason: row.disabledReason,
    failingSince: isoOrNull(row.failingSince),
    createdBy: row.createdBy,
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}

/** The one answer that carries the secret: create and rotateSecret. */
export function toWebhookWithSecret(row: EndpointRow): WebhookEndpointWithSecret {
  return { ...toWebhook(row), secret: row.secret };
}

export function toWebhookAttempt(row: AttemptRow): WebhookAttempt {
  return {
    id: row.id,
    deliveryId: row.deliveryId,
    messageId: row.messageId,
    eventId: row.eventId,
    attempt: row.attempt,
    at: iso(row.at),
    statusCode: row.statusCode,
    durationMs: row.durationMs,
    error: row.error,
    nextAttemptAt: isoOrNull(row.nextAttemptAt),
    state: row.state,
  };
}
