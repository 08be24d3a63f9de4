/**
 * The client package's `schemas` entry (`@taskflow/client/schemas`): the zod schemas the server
 * validates with, to check a form before sending it (`TaskCreateInput.safeParse(form)`). Separate
 * from the light entry so that only pages which validate load zod.
 */
import type { z } from 'zod';
import * as schemas from './schemas/index.js';

export * from './schemas/index.js';

// Each enum is both a zod schema (to validate a form field) and the union type (to annotate a value).
export const TaskStatus = schemas.TaskStatus;
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TaskPriority = schemas.TaskPriority;
export type TaskPriority = z.infer<typeof TaskPriority>;
export const TaskAction = schemas.TaskAction;
export type TaskAction = z.infer<typeof TaskAction>;
export const TaskSort = schemas.TaskSort;
export type TaskSort = z.infer<typeof TaskSort>;
export const SortOrder = schemas.SortOrder;
export type SortOrder = z.infer<typeof SortOrder>;
export const WorkerType = schemas.WorkerType;
export type WorkerType = z.infer<typeof WorkerType>;
export const Role = schemas.Role;
export type Role = z.infer<typeof Role>;
export const MemberRole = schemas.MemberRole;
export type MemberRole = z.infer<typeof MemberRole>;
export const AuditAction = schemas.AuditAction;
export type AuditAction = z.infer<typeof AuditAction>;
