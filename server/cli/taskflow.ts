#!/usr/bin/env node
/**
 * `taskflow`: the command line on the typed client. It calls the same tRPC procedures as the web
 * frontend and the MCP tools, so every rule and every audit row is the server's; nothing here
 * touches services or the database.
 */
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import {
  type AuditEntry,
  createTaskflowClient,
  errorInfo,
  legalActions,
  type RouterInputs,
  TASK_PRIORITIES,
  TASK_SORTS,
  TASK_STATUSES,
  type Task,
  type TaskflowClient,
} from '../../shared/client.js';

/** Exit codes, documented in the README: scripts can tell a lost claim (5) from a typo (2). */
const EXIT = {
  failure: 1,
  usage: 2,
  auth: 3,
  notFound: 4,
  conflict: 5,
  unavailable: 6,
} as const;

const DEFAULT_URL = 'http://127.0.0.1:8000';

class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
}

// ---------- argument parsers ----------

function parseId(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1)
    throw new InvalidArgumentError('must be a task id (1, 2, …)');
  return Number(value);
}

function parseInteger(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

/** Repeatable and comma-separated: `--status pending,review --status blocked`. */
function listOf<T extends string>(allowed: readonly T[]) {
  return (value: string, previous: T[] = []): T[] => {
    const items = value
      .split(',')
      .map((item) => item.trim())
      .filter(Boolean);
    for (const item of items) {
      if (!allowed.includes(item as T)) {
        throw new InvalidArgumentError(`"${item}" is not one of ${allowed.join(', ')}`);
      }
    }
    return [...previous, ...(items as T[])];
  };
}

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

// ---------- output ----------

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

function printJson(value: unknown): void {
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

const dash = (value: string | number | null | undefined) =>
  value === null || value === undefined || value === '' ? '-' : String(value);

function summary(task: Task): string {
  const details = [
    `${task.progressPercent}%`,
    task.assignedTo ? `assigned to ${task.assignedTo}` : 'unassigned',
  ];
  if (task.status === 'blocked' && task.blockedReason) details.push(`reason: ${task.blockedReason}`);
  return `Task ${task.id} is ${task.status} (${details.join(', ')}): ${task.title}`;
}

function taskTable(tasks: Task[]): string {
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

function historyTable(entries: AuditEntry[]): string {
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

// ---------- errors ----------

const EXIT_OF_CODE: Partial<Record<string, number>> = {
  BAD_REQUEST: EXIT.usage,
  UNAUTHORIZED: EXIT.auth,
  FORBIDDEN: EXIT.auth,
  NOT_FOUND: EXIT.notFound,
  CONFLICT: EXIT.conflict,
  SERVICE_UNAVAILABLE: EXIT.unavailable,
};

/** One line for people (`taskflow: CONFLICT: …`), the SPEC §6 body for machines (`--json`). */
function reportFailure(error: unknown, options: Partial<GlobalOptions>): number {
  if (error instanceof CliError) {
    writeError(options, error.message);
    return error.exitCode;
  }
  const info = errorInfo(error);
  if (info.code === null) {
    writeError(options, `cannot reach ${options.url ?? DEFAULT_URL}: ${info.message}`);
    return EXIT.unavailable;
  }
  const exitCode = EXIT_OF_CODE[info.code] ?? EXIT.failure;
  const issues = info.issues.map(
    (issue) => `${issue.path.map(String).join('.') || 'input'}: ${issue.message}`,
  );
  if (options.json) {
    process.stderr.write(
      `${JSON.stringify({
        error: info.message,
        code: info.code,
        status_code: info.status,
        ...(info.issues.length > 0 ? { issues: info.issues } : {}),
        requestId: info.requestId,
      })}\n`,
    );
  } else {
    process.stderr.write(`taskflow: ${info.code}: ${[info.message, ...issues].join('; ')}\n`);
  }
  return exitCode;
}

function writeError(options: Partial<GlobalOptions>, message: string): void {
  if (options.json) {
    process.stderr.write(`${JSON.stringify({ error: message, code: null })}\n`);
  } else {
    process.stderr.write(`taskflow: ${message}\n`);
  }
}

// ---------- commands ----------

/**
 * Runs an action with a client made from the global options; `--json` picks the output. `run` gets
 * commander's arguments: the positional ones, then the command's own options.
 */
function action<A extends unknown[]>(
  run: (client: TaskflowClient, options: GlobalOptions, ...args: A) => Promise<void>,
): (...args: [...A, Command]) => Promise<void> {
  return async (...all) => {
    const command = all[all.length - 1] as Command;
    const options = command.optsWithGlobals<GlobalOptions>();
    if (!options.token) {
      throw new CliError(
        'no token: pass --token or set TASKFLOW_TOKEN (npm run token -- --sub <you>)',
        EXIT.auth,
      );
    }
    const client = createTaskflowClient({ url: options.url, token: options.token });
    await run(client, options, ...(all.slice(0, -1) as A));
  };
}

/** A workflow verb: one id in, the task as it now stands out. */
function workflowCommand(
  program: Command,
  name: string,
  description: string,
  call: (client: TaskflowClient, id: number) => Promise<Task>,
): Command {
  return program
    .command(name)
    .description(description)
    .argument('<id>', 'task id', parseId)
    .action(
      action(async (client, options, id: number) => {
        const task = await call(client, id);
        if (options.json) printJson(task);
        else print(summary(task));
      }),
    );
}

interface ListOptions {
  status?: RouterInputs['tasks']['list']['status'];
  priority?: RouterInputs['tasks']['list']['priority'];
  assignedTo?: string;
  project?: string;
  parent?: number;
  label?: string;
  search?: string;
  updatedSince?: string;
  sort?: (typeof TASK_SORTS)[number];
  order?: 'asc' | 'desc';
  limit?: number;
  cursor?: string;
  all?: boolean;
}

function buildProgram(): Command {
  const program = new Command('taskflow')
    .description('TaskFlow from the command line: the same procedures as the web app and the MCP tools.')
    .addOption(new Option('--url <url>', 'server base URL').env('TASKFLOW_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <jwt>', 'bearer token').env('TASKFLOW_TOKEN'))
    .option('--json', 'print JSON (results on stdout, errors on stderr)')
    .exitOverride()
    .configureOutput({
      outputError: (message, write) => write(`taskflow: ${message.replace(/^error: /, '')}`),
    })
    .showSuggestionAfterError();

  const tasks = program.command('tasks').description('list, show and create tasks');

  tasks
    .command('list')
    .description('tasks you can see, newest first')
    .option(
      '--status <status>',
      `filter by status (${TASK_STATUSES.join(', ')}); repeat or comma-separate`,
      listOf(TASK_STATUSES),
    )
    .option(
      '--priority <priority>',
      `filter by priority (${TASK_PRIORITIES.join(', ')})`,
      listOf(TASK_PRIORITIES),
    )
    .option('--assigned-to <worker>', 'a worker id, "me" or "none"')
    .option('--project <slug>', 'tasks of a project')
    .option('--parent <id>', 'subtasks of a task', parseId)
    .option('--label <label>', 'tasks with this label')
    .option('-q, --search <text>', 'search titles and descriptions')
    .option('--updated-since <iso>', 'changed since this time (ISO-8601 with offset)')
    .addOption(new Option('--sort <field>', 'sort field').choices(TASK_SORTS))
    .addOption(new Option('--order <order>', 'sort order').choices(['asc', 'desc'] as const))
    .option('--limit <n>', 'page size, 1-100', parseInteger)
    .option('--cursor <cursor>', 'the next page (printed under a full page)')
    .option('--all', 'follow the cursor through every page')
    .action(
      action(async (client, options, filters: ListOptions) => {
        const input: RouterInputs['tasks']['list'] = {
          status: filters.status,
          priority: filters.priority,
          assignedTo: filters.assignedTo,
          project: filters.project,
          parentId: filters.parent,
          label: filters.label,
          q: filters.search,
          updatedSince: filters.updatedSince,
          sort: filters.sort,
          order: filters.order,
          limit: filters.limit,
          cursor: filters.cursor,
        };
        let page = await client.tasks.list.query(input);
        const items = [...page.items];
        while (filters.all && page.nextCursor) {
          page = await client.tasks.list.query({ ...input, cursor: page.nextCursor });
          items.push(...page.items);
        }
        if (options.json) {
          printJson({ items, nextCursor: page.nextCursor });
          return;
        }
        print(items.length > 0 ? taskTable(items) : 'No tasks.');
        if (page.nextCursor) print(`More: taskflow tasks list --cursor ${page.nextCursor} (or --all)`);
      }),
    );

  tasks
    .command('show')
    .description('one task, and what you may do with it')
    .argument('<id>', 'task id', parseId)
    .action(
      action(async (client, options, id: number) => {
        const [task, me] = await Promise.all([client.tasks.get.query({ id }), client.workers.me.query({})]);
        let isProjectOwner = false;
        if (task.projectSlug) {
          const project = await client.projects.get.query({ slug: task.projectSlug });
          isProjectOwner = project.members.some(
            (member) => member.workerId === me.id && member.role === 'owner',
          );
        }
        const actions = legalActions(task, { id: me.id, role: me.role, isProjectOwner });
        if (options.json) {
          printJson({ ...task, legalActions: actions });
          return;
        }
        const rows: [string, string][] = [
          ['status', `${task.status} (${task.progressPercent}%)`],
          ['priority', task.priority],
          ['assignee', dash(task.assignedTo)],
          ['project', dash(task.projectSlug)],
          ['parent', dash(task.parentId)],
          ['labels', task.labels.length > 0 ? task.labels.join(', ') : '-'],
          ['due', dash(task.dueDate)],
          ...(task.blockedReason ? [['blocked', task.blockedReason] as [string, string]] : []),
          ['created', `${task.createdAt} by ${task.createdBy}`],
          ['updated', `${task.updatedAt} (version ${task.version})`],
          ...(task.completedAt ? [['completed', task.completedAt] as [string, string]] : []),
          ['you can', actions.length > 0 ? actions.join(', ') : '-'],
        ];
        print(`Task ${task.id}: ${task.title}`);
        for (const [key, value] of rows) print(`  ${key.padEnd(10)}${value}`);
        if (task.description) print(`\n${task.description}`);
      }),
    );

  tasks
    .command('create')
    .description('create a pending task')
    .argument('<title>', 'what needs doing')
    .option('-d, --description <text>', 'longer description')
    .addOption(new Option('--priority <priority>', 'priority').choices(TASK_PRIORITIES))
    .option('--project <slug>', 'put it in a project')
    .option('--parent <id>', 'make it a subtask', parseId)
    .option('--label <label>', 'a label; repeat for more', collect)
    .option('--due <iso>', 'due date (ISO-8601 with offset)')
    .action(
      action(
        async (
          client,
          options,
          title: string,
          opts: {
            description?: string;
            priority?: (typeof TASK_PRIORITIES)[number];
            project?: string;
            parent?: number;
            label?: string[];
            due?: string;
          },
        ) => {
          const task = await client.tasks.create.mutate({
            title,
            description: opts.description,
            priority: opts.priority,
            projectSlug: opts.project,
            parentId: opts.parent,
            labels: opts.label,
            dueDate: opts.due,
          });
          if (options.json) printJson(task);
          else print(`Created task ${task.id}: ${task.title} (${task.status}, ${task.priority})`);
        },
      ),
    );

  workflowCommand(program, 'start', 'claim a pending task: it becomes yours and in_progress', (client, id) =>
    client.tasks.start.mutate({ id }),
  ).alias('claim');

  program
    .command('progress')
    .description('report progress on a task you hold')
    .argument('<id>', 'task id', parseId)
    .argument('<percent>', '0-100', parseInteger)
    .option('--note <text>', 'a note for the history')
    .action(
      action(async (client, options, id: number, percent: number, opts: { note?: string }) => {
        const task = await client.tasks.progress.mutate({ id, percent, note: opts.note });
        if (options.json) printJson(task);
        else print(summary(task));
      }),
    );

  workflowCommand(program, 'review', 'submit a task for review', (client, id) =>
    client.tasks.submitForReview.mutate({ id }),
  );
  workflowCommand(program, 'complete', 'complete a task', (client, id) =>
    client.tasks.complete.mutate({ id }),
  );

  program
    .command('block')
    .description('block a task, with a reason')
    .argument('<id>', 'task id', parseId)
    .requiredOption('--reason <text>', 'why it is blocked')
    .action(
      action(async (client, options, id: number, opts: { reason: string }) => {
        const task = await client.tasks.block.mutate({ id, reason: opts.reason });
        if (options.json) printJson(task);
        else print(summary(task));
      }),
    );

  workflowCommand(program, 'unblock', 'unblock a task', (client, id) => client.tasks.unblock.mutate({ id }));

  program
    .command('history')
    .description("a task's audit trail, oldest first")
    .argument('<id>', 'task id', parseId)
    .action(
      action(async (client, options, id: number) => {
        const entries = await client.tasks.history.query({ id });
        if (options.json) printJson(entries);
        else print(entries.length > 0 ? historyTable(entries) : 'No history.');
      }),
    );

  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version "errors" exit 0; commander has already printed the message.
      return error.exitCode === 0 ? 0 : EXIT.usage;
    }
    return reportFailure(error, program.opts<GlobalOptions>());
  }
}

// exitCode rather than exit(): a piped stdout must drain before the process ends.
process.exitCode = await main(process.argv);
