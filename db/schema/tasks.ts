import { sql } from 'drizzle-orm';
import { type AnyPgColumn, check, index, integer, pgTable, smallint, text } from 'drizzle-orm/pg-core';
import { createdAt, timestampMs } from './columns.js';
import { taskPriority, taskStatus } from './enums.js';
import { projects } from './projects.js';

export const tasks = pgTable(
  'tasks',
  {
    id: integer().primaryKey().generatedAlwaysAsIdentity(),
    title: text().notNull(),
    description: text(),
    status: taskStatus().notNull().default('pending'),
    priority: taskPriority().notNull().default('medium'),
    progressPercent: smallint().notNull().default(0),
    assignedTo: text(),
    projectSlug: text().references(() => projects.slug),
    parentId: integer().references((): AnyPgColumn => tasks.id),
    labels: text().array().notNull().default([]),
    dueDate: timestampMs(),
    blockedReason: text(),
    createdBy: text().notNull(),
    createdAt: createdAt(),
    updatedAt: timestampMs().notNull().defaultNow(),
    completedAt: timestampMs(),
    version: integer().notNull().default(1),
    requiredCapabilities: text().array().notNull().default([]),
    /** When the holder's claim lapses unless renewed; null: no lease (a person's claim, or not held). */
    leaseExpiresAt: timestampMs(),
    /** The length of the claim's lease, by which a heartbeat or progress renews it. */
    leaseSeconds: integer(),
  },
  (t) => [
    check('tasks_progress_range', sql`${t.progressPercent} between 0 and 100`),
    check('tasks_title_length', sql`char_length(${t.title}) between 1 and 200`),
    // Keyset pagination: every sort is (column, id), per project and overall.
    index('tasks_project_created_idx').on(t.projectSlug, t.createdAt, t.id),
    index('tasks_project_updated_idx').on(t.projectSlug, t.updatedAt, t.id),
    index('tasks_project_priority_idx').on(t.projectSlug, t.priority, t.id),
    index('tasks_project_due_idx').on(t.projectSlug, t.dueDate, t.id),
    index('tasks_project_status_created_idx').on(t.projectSlug, t.status, t.createdAt, t.id),
    index('tasks_created_idx').on(t.createdAt, t.id),
    index('tasks_updated_idx').on(t.updatedAt, t.id),
    // The other two sorts across projects (admins, or members over all their projects).
    index('tasks_priority_idx').on(t.priority, t.id),
    index('tasks_due_idx').on(t.dueDate, t.id),
    index('tasks_assigned_idx').on(t.assignedTo, t.createdAt, t.id),
    index('tasks_created_by_idx').on(t.createdBy),
    index('tasks_parent_idx').on(t.parentId),
    index('tasks_labels_idx').using('gin', t.labels),
    // The work queue's order over what can be claimed, and the leases the sweeper watches.
    index('tasks_claimable_idx')
      .on(t.priority.desc(), t.dueDate.asc().nullsLast(), t.createdAt, t.id)
      .where(sql`${t.status} = 'pending' and ${t.assignedTo} is null`),
    // The same per project: a member's claim reads only the projects they belong to.
    index('tasks_claimable_project_idx')
      .on(t.projectSlug, t.priority.desc(), t.dueDate.asc().nullsLast(), t.createdAt, t.id)
      .where(sql`${t.status} = 'pending' and ${t.assignedTo} is null`),
    index('tasks_lease_idx').on(t.leaseExpiresAt).where(sql`${t.leaseExpiresAt} is not null`),
    // An admin's `q` search (ILIKE '%…%' on title or description) reads these trigram indexes (pg_trgm).
    index('tasks_title_trgm_idx').using('gin', t.title.op('gin_trgm_ops')),
    index('tasks_description_trgm_idx').using('gin', t.description.op('gin_trgm_ops')),
    // A member's `q` search: per visibility tag, the three-character pieces of title and description
    // (task_search_keys, migration 0010), so it reads only matching tasks the member may see. Without
    // a pending list: a search scans it whole once per tag, and busy writes kept it full (a 100 000
    // task search went from 0.3 ms to 8 ms); writes add their keys at once instead.
    index('tasks_search_keys_idx')
      .using(
        'gin',
        sql`task_search_keys(${t.projectSlug}, ${t.createdBy}, ${t.assignedTo}, ${t.title}, ${t.description})`,
      )
      .with({ fastupdate: false }),
  ],
);
