import type { Command } from 'commander';
import { createTaskflowClient, type TaskEvent } from '../../../shared/client.js';
import { parseId } from '../arguments.js';
import { action } from '../command.js';
import { print } from '../output.js';

/** One line per event for people: id, time, action, who, and the task as the change left it. */
function eventLine(event: TaskEvent): string {
  const task = event.task
    ? ` task ${event.task.id} [${event.task.status} ${event.task.progressPercent}%] ${event.task.title}`
    : event.taskId === null
      ? ''
      : ` task ${event.taskId}`;
  const project = event.projectSlug ? ` (${event.projectSlug})` : '';
  return `#${event.id} ${event.at} ${event.action} by ${event.actorId}${task}${project}`;
}

/**
 * `taskflow watch`: the caller's events as they are committed, one line each (or one JSON object
 * per line with --json), until Ctrl-C. A dropped connection reconnects and resumes where it stopped.
 */
export function registerWatchCommand(program: Command): void {
  program
    .command('watch')
    .description('print events as they happen, until interrupted')
    .option('--project <slug>', 'only this project')
    .option('--task <id>', 'only this task', parseId)
    .option('--after <id>', 'start after this event id instead of now (what a previous run printed last)')
    .action(
      action(async (_client, options, opts: { project?: string; task?: number; after?: string }) => {
        // Loaded only here: the other commands need no EventSource (Node 20 has none of its own).
        const { EventSource } = await import('eventsource');
        const client = createTaskflowClient({ url: options.url, token: options.token, EventSource });
        await new Promise<void>((resolve, reject) => {
          const subscription = client.events.onChange.subscribe(
            { project: opts.project, taskId: opts.task, lastEventId: opts.after },
            {
              onData: ({ data }) => print(options.json ? JSON.stringify(data) : eventLine(data)),
              onError: (error) => reject(error),
              onComplete: () => resolve(),
            },
          );
          const stop = () => {
            subscription.unsubscribe();
            resolve();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      }),
    );
}
