import type { Command } from 'commander';
import type { Task, TaskflowClient } from '../../../shared/client.js';
import { parseId, parseInteger } from '../arguments.js';
import { action } from '../command.js';
import { historyTable, print, printJson, summary } from '../output.js';

/**
 * A workflow verb: `<id>` and whatever `configure` adds (commander passes those after the id),
 * the task as it now stands out.
 */
function workflowCommand<A extends unknown[]>(
  program: Command,
  name: string,
  description: string,
  call: (client: TaskflowClient, id: number, ...rest: A) => Promise<Task>,
  configure: (command: Command) => Command = (command) => command,
): Command {
  return configure(
    program.command(name).description(description).argument('<id>', 'task id', parseId),
  ).action(
    action(async (client, options, id: number, ...rest: A) => {
      const task = await call(client, id, ...rest);
      if (options.json) printJson(task);
      else print(summary(task));
    }),
  );
}

/** The workflow verbs (start, progress, review, complete, block, unblock, reopen), assign, and a task's history. */
export function registerWorkflowCommands(program: Command): void {
  workflowCommand(program, 'start', 'claim a pending task: it becomes yours and in_progress', (client, id) =>
    client.tasks.start.mutate({ id }),
  ).alias('claim');

  workflowCommand(
    program,
    'progress',
    'report progress on a task you hold',
    (client, id, percent: number, opts: { note?: string }) =>
      client.tasks.progress.mutate({ id, percent, note: opts.note }),
    (command) =>
      command.argument('<percent>', '0-100', parseInteger).option('--note <text>', 'a note for the history'),
  );

  workflowCommand(program, 'review', 'submit a task for review', (client, id) =>
    client.tasks.submitForReview.mutate({ id }),
  );
  workflowCommand(program, 'complete', 'complete a task', (client, id) =>
    client.tasks.complete.mutate({ id }),
  );

  workflowCommand(
    program,
    'block',
    'block a task, with a reason',
    (client, id, opts: { reason: string }) => client.tasks.block.mutate({ id, reason: opts.reason }),
    (command) => command.requiredOption('--reason <text>', 'why it is blocked'),
  );

  workflowCommand(program, 'unblock', 'unblock a task', (client, id) => client.tasks.unblock.mutate({ id }));
  workflowCommand(program, 'reopen', 'reopen a completed task: it becomes pending', (client, id) =>
    client.tasks.reopen.mutate({ id }),
  );

  workflowCommand(
    program,
    'assign',
    'assign a task to a worker, or "none" to unassign it',
    (client, id, worker: string) =>
      client.tasks.assign.mutate({ id, workerId: worker === 'none' ? null : worker }),
    (command) => command.argument('<worker>', 'a worker id, or "none"'),
  );

  program
    .command('history')
    .description("a task's whole audit trail, oldest first")
    .argument('<id>', 'task id', parseId)
    .action(
      action(async (client, options, id: number) => {
        const items = [];
        let cursor: string | undefined;
        do {
          const page = await client.tasks.history.query({ id, limit: 100, cursor });
          items.push(...page.items);
          cursor = page.nextCursor ?? undefined;
        } while (cursor);
        if (options.json) printJson({ items, nextCursor: null });
        else print(items.length > 0 ? historyTable(items) : 'No history.');
      }),
    );
}
