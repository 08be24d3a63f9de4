import type { Role, TaskStatus } from './enums.js';

/** The workflow of SPEC §4: the one place that says which action is legal from which status, by whom. */
export const TASK_ACTIONS = [
  'start',
  'progress',
  'submitForReview',
  'complete',
  'block',
  'unblock',
  'reopen',
] as const;
export type TaskAction = (typeof TASK_ACTIONS)[number];

/** How an actor stands to a task; `anyone` is anyone who may see it. */
export type Relation = 'anyone' | 'assignee' | 'creator' | 'projectOwner' | 'admin';

export interface ActionRule {
  from: readonly TaskStatus[];
  who: readonly Relation[];
}

export const WORKFLOW: Readonly<Record<TaskAction, ActionRule>> = {
  start: { from: ['pending'], who: ['anyone'] },
  progress: { from: ['in_progress'], who: ['assignee', 'admin'] },
  submitForReview: { from: ['in_progress'], who: ['assignee', 'admin'] },
  complete: { from: ['in_progress', 'review'], who: ['assignee', 'projectOwner', 'admin'] },
  block: { from: ['pending', 'in_progress', 'review'], who: ['assignee', 'creator', 'admin'] },
  unblock: { from: ['blocked'], who: ['assignee', 'creator', 'admin'] },
  reopen: { from: ['completed'], who: ['creator', 'projectOwner', 'admin'] },
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

/** Whether the actor's standing allows the action, regardless of status. */
export function mayPerform(action: TaskAction, task: WorkflowTask, actor: WorkflowActor): boolean {
  const relations = relationsOf(task, actor);
  // Admins may do everything but claim a task somebody else holds.
  if (action === 'start') return relations.has('anyone');
  return WORKFLOW[action].who.some((relation) => relations.has(relation));
}

/** What this actor may do to this task now: what a client shows as buttons. */
export function legalActions(task: WorkflowTask, actor: WorkflowActor): TaskAction[] {
  return actionsFrom(task.status).filter((action) => mayPerform(action, task, actor));
}
