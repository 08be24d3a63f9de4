import { type Command, Option } from 'commander';
import {
  legalActions,
  type RouterInputs,
  TASK_PRIORITIES,
  TASK_SORTS,
  TASK_STATUSES,
} from '../../../shared/client.js';
import { collect, listOf, parseId, parseInteger } from '../arguments.js';
import { action } from '../command.js';
import { dash, print, printJson, taskTable } from '../output.js';

interface ListOptions {
  status?: (typeof TASK_STATUSES)[number][];
  priority?: (typeof TASK_PRIORITIES)[number][];
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

/** `taskflow tasks list | show | create`. */
export function registerTaskCommands(program: Command): void {
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
}
