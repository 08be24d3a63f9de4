import { getTableColumns } from 'drizzle-orm';
import { tasks } from '../../../db/schema/index.js';

export type TaskRow = typeof tasks.$inferSelect;

/** The task table's columns in their order: what `select()` and `returning()` render. */
export const taskColumns = getTableColumns(tasks);
