import type { AuditEntry, Project, Task, WebhookAttempt, WebhookEndpoint } from '../../shared/client.js';

// What the CLI prints for people; `--json` prints the API's JSON instead.

export function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function clip(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export const dash = (value: string | number | null | undefined) =>
  value === null || value === undefined || value === '' ? '-' : String(value);

/** One line on a task as it now stands, after a workflow command. */
export function summary(task: Task): string {
  const details = [
    `${task.progressPercent}%`,
    task.assignedTo ? `assigned to ${task.assignedTo}` : 'unassigned',
  ];
  if (task.status === 'blocked' && task.blockedReason) details.push(`reason: ${task.blockedReason}`);
  return `Task ${task.id} is ${task.status} (${details.join(', ')}): ${task.title}`;
}

export function taskTable(tasks: Task[]): string {
  return table(
    ['ID', 'STATUS', 'PRIORITY', 'PROGRESS', 'ASSIGNEE', 'PROJECT', 'TITLE'],
    tasks.map((task) => [
      String(task.id),
      task.status,
      task.priority,
      `${task.progressPercent}%`,
      dash(task.assignedTo),
      dash(task.projectSlug),
      clip(task.title, 60),
    ]),
  );
}

export function historyTable(entries: AuditEntry[]): string {
  return table(
    ['AT', 'ACTOR', 'TYPE', 'ACTION', 'DETAILS'],
    entries.map((entry) => [
      entry.at,
      entry.actorId,
      entry.actorType,
      entry.action,
      Object.keys(entry.context).length > 0 ? clip(JSON.stringify(entry.context), 80) : '',
    ]),
  );
}

export function projectTable(projects: Project[]): string {
  return table(
    ['SLUG', 'OWNER', 'NAME'],
    projects.map((project) => [project.slug, project.ownerId, clip(project.name, 60)]),
  );
}

export function webhookTable(hooks: WebhookEndpoint[]): string {
  return table(
    ['ID', 'PROJECT', 'STATE', 'ACTIONS', 'URL'],
    hooks.map((hook) => [
      String(hook.id),
      dash(hook.project),
      hook.enabled
        ? 'enabled'
        : `disabled${hook.disabledReason ? ` (${clip(hook.disabledReason, 60)})` : ''}`,
      hook.actions.length > 0 ? clip(hook.actions.join(','), 40) : 'all',
      hook.url,
    ]),
  );
}

export function attemptTable(attempts: WebhookAttempt[]): string {
  return table(
    ['AT', 'MESSAGE', 'TRY', 'STATUS', 'MS', 'STATE', 'NEXT', 'ERROR'],
    attempts.map((attempt) => [
      attempt.at,
      attempt.messageId,
      String(attempt.attempt),
      dash(attempt.statusCode),
      String(attempt.durationMs),
      attempt.state,
      dash(attempt.nextAttemptAt),
      clip(attempt.error ?? '', 80),
    ]),
  );
}
