import type { Role, TaskStatus } from './enums.js';

// The task workflow and who may do what to a task: the one place these rules are written. The
// server derives its SQL conditions from these tables (server/services/tasks/permissions.ts), and
// clients use the same functions to show what a user may do.

/** The workflow actions: the only way a task's status changes. */
export const TASK_ACTIONS = [
  'start',
  'progress',
  'submitForReview',
  'complete',
  'block',
  'unblock',
  'reopen',
  'heartbeat',
  'release',
] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** What someone may or may not be allowed to do to a task: edit, assign, delete, or a workflow action. */
export const TASK_OPERATIONS = ['edit', 'assign', 'delete', ...TASK_ACTIONS] as const;
export type TaskOperation = (typeof TASK_OPERATIONS)[number];

/**
 * How an actor stands to a task; several may hold at once.
 * - `anyone`: anyone who may see the task, as long as nobody else holds it (a task assigned to
 *   somebody is theirs to work on);
 * - `assignee`, `creator`: the worker it is assigned to, the worker who created it;
 * - `projectOwner`: an owner of the task's project;
 * - `admin`: an admin (the role comes from the token).
 */
export type Relation = 'anyone' | 'assignee' | 'creator' | 'projectOwner' | 'admin';

export interface ActionRule {
  /** The statuses the action is legal from. */
  from: readonly TaskStatus[];
}

export const WORKFLOW: Readonly<Record<TaskAction, ActionRule>> = {
  start: { from: ['pending'] },
  progress: { from: ['in_progress'] },
  submitForReview: { from: ['in_progress'] },
  complete: { from: ['in_progress', 'review'] },
  block: { from: ['pending', 'in_progress', 'review'] },
  unblock: { from: ['blocked'] },
  reopen: { from: ['completed'] },
  heartbeat: { from: ['in_progress'] },
  release: { from: ['in_progress'] },
};

/**
 * Who may do what, whatever the status: an actor may when they stand in one of the listed relations
 * to the task. Admins may do everything but claim a task somebody else holds.
 */
export const PERMISSIONS: Readonly<Record<TaskOperation, readonly Relation[]>> = {
  edit: ['creator', 'assignee', 'projectOwner', 'admin'],
  assign: ['creator', 'assignee', 'projectOwner', 'admin'],
  delete: ['creator', 'admin'],
  start: ['anyone'],
  progress: ['assignee', 'admin'],
  submitForReview: ['assignee', 'admin'],
  complete: ['assignee', 'projectOwner', 'admin'],
  block: ['assignee', 'creator', 'admin'],
  unblock: ['assignee', 'creator', 'admin'],
  reopen: ['creator', 'projectOwner', 'admin'],
  heartbeat: ['assignee'],
  release: ['assignee', 'projectOwner', 'admin'],
};

/** The fields of a task the workflow looks at. */
export interface WorkflowTask {
  status: TaskStatus;
  assignedTo: string | null;
  createdBy: string;
}

/** The fields of an actor the workflow looks at; `isProjectOwner` is about the task's project. */
export interface WorkflowActor {
  id: string;
  role: Role;
  isProjectOwner?: boolean;
}

/** The status an action leads to from `task`, or null when the action is not legal from its status. */
export function nextStatus(
  task: Pick<WorkflowTask, 'status' | 'assignedTo'>,
  action: TaskAction,
): TaskStatus | null {
  if (!WORKFLOW[action].from.includes(task.status)) return null;
  switch (action) {
    case 'start':
    case 'progress':
    case 'heartbeat':
      return 'in_progress';
    case 'submitForReview':
      return 'review';
    case 'complete':
      return 'completed';
    case 'block':
      return 'blocked';
    case 'unblock':
      return task.assignedTo ? 'in_progress' : 'pending';
    case 'reopen':
    case 'release':
      return 'pending';
  }
}

/** Actions legal from a status, whoever asks. */
export function actionsFrom(status: TaskStatus): TaskAction[] {
  return TASK_ACTIONS.filter((action) => WORKFLOW[action].from.includes(status));
}

export function relationsOf(task: WorkflowTask, actor: WorkflowActor): Set<Relation> {
  const relations = new Set<Relation>();
  if (task.assignedTo === null || task.assignedTo === actor.id) relations.add('anyone');
  if (task.assignedTo === actor.id) relations.add('assignee');
  if (task.createdBy === actor.id) relations.add('creator');
  if (actor.isProjectOwner) relations.add('projectOwner');
  if (actor.role === 'admin') relations.add('admin');
  return relations;
}

/** Whether the actor's standing allows the operation, regardless of status. */
export function mayPerform(operation: TaskOperation, task: WorkflowTask, actor: WorkflowActor): boolean {
  const relations = relationsOf(task, actor);
  return PERMISSIONS[operation].some((relation) => relations.has(relation));
}

/** What this actor may do to this task now: what a client shows as buttons. */
export function legalActions(task: WorkflowTask, actor: WorkflowActor): TaskAction[] {
  return actionsFrom(task.status).filter((action) => mayPerform(action, task, actor));
}
