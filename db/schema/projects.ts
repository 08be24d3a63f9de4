import { index, pgTable, primaryKey, text } from 'drizzle-orm/pg-core';
import { createdAt } from './columns.js';
import { memberRole } from './enums.js';

export const projects = pgTable('projects', {
  slug: text().primaryKey(),
  name: text().notNull(),
  description: text(),
  ownerId: text().notNull(),
  createdAt: createdAt(),
});

export const projectMembers = pgTable(
  'project_members',
  {
    projectSlug: text()
      .notNull()
      .references(() => projects.slug, { onDelete: 'cascade' }),
    workerId: text().notNull(),
    role: memberRole().notNull().default('member'),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.projectSlug, t.workerId] }),
    // Visibility checks look members up by worker.
    index('project_members_worker_idx').on(t.workerId, t.projectSlug),
  ],
);
