import { spawn } from 'node:child_process';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { TASK_PRIORITIES, type Task, type TaskflowClient } from '../../../shared/client.js';
import { collect, parseId, parseInteger } from '../arguments.js';
import { action } from '../command.js';
import { CliError, EXIT } from '../failure.js';
import { print, printJson, summary } from '../output.js';

// The work queue from the shell: take the next task (`next`), keep it (`heartbeat`), hand it back
// (`release`), or let `work` do all of it around a command.

interface ClaimOptions {
  project?: string;
  label?: string[];
  minPriority?: Task['priority'];
  lease?: number;
}

function parseLease(value: string): number {
  const seconds = parseInteger(value);
  if (seconds < 10 || seconds > 86_400) throw new InvalidArgumentError('must be 10 to 86400 seconds');
  return seconds;
}

/** The claim filters `next` and `work` share. */
function claimOptions(command: Command): Command {
  return command
    .option('--project <slug>', 'only tasks of this project')
    .option('--label <label>', 'only tasks with this label (repeatable)', collect)
    .addOption(
      new Option('--min-priority <priority>', 'only this priority or higher').choices(TASK_PRIORITIES),
    )
    .option('--lease <seconds>', 'lease length (agents default to the server’s)', parseLease);
}

async function claim(client: TaskflowClient, opts: ClaimOptions): Promise<Task | null> {
  const { task } = await client.tasks.claimNext.mutate({
    project: opts.project,
    labels: opts.label,
    minPriority: opts.minPriority,
    leaseSeconds: opts.lease,
  });
  return task;
}

function show(task: Task | null, json: boolean | undefined): void {
  if (json) printJson({ task });
  else print(task ? summary(task) : 'Nothing to claim.');
}

/** Why a command ended, for the release's reason and for people. */
function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exited with code ${code}`;
}

/**
 * Runs `argv` with the task as JSON on its stdin, renewing the lease meanwhile (three times per
 * lease, so one lost heartbeat does not lose the task). Resolves with its exit.
 */
async function runWithHeartbeats(
  client: TaskflowClient,
  task: Task,
  argv: string[],
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const [file, ...args] = argv as [string, ...string[]];
  const child = spawn(file, args, {
    stdio: ['pipe', 'inherit', 'inherit'],
    env: { ...process.env, TASKFLOW_TASK_ID: String(task.id) },
  });
  child.stdin.on('error', () => {});
  child.stdin.end(JSON.stringify(task));
  const leaseMs = task.leaseExpiresAt ? new Date(task.leaseExpiresAt).getTime() - Date.now() : null;
  const beat =
    leaseMs === null
      ? undefined
      : setInterval(
          () => {
            client.tasks.heartbeat.mutate({ id: task.id }).catch((error: unknown) => {
              process.stderr.write(`taskflow: heartbeat failed: ${String(error)}\n`);
            });
          },
          Math.max(1_000, Math.floor(leaseMs / 3)),
        );
  try {
    return await new Promise((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  } finally {
    clearInterval(beat);
  }
}

export function registerQueueCommands(program: Command): void {
  claimOptions(
    program.command('next').description('claim the next task you can do (prints nothing to claim when none)'),
  ).action(
    action(async (client, options, opts: ClaimOptions) => {
      show(await claim(client, opts), options.json);
    }),
  );

  program
    .command('heartbeat')
    .description('renew the lease on a task you hold')
    .argument('<id>', 'task id', parseId)
    .option('--lease <seconds>', 'new lease length', parseLease)
    .action(
      action(async (client, options, id: number, opts: { lease?: number }) => {
        const task = await client.tasks.heartbeat.mutate({ id, leaseSeconds: opts.lease });
        if (options.json) printJson(task);
        else print(`${summary(task)} (lease until ${task.leaseExpiresAt ?? 'none'})`);
      }),
    );

  program
    .command('release')
    .description('hand a task you hold back to the queue')
    .argument('<id>', 'task id', parseId)
    .option('--reason <text>', 'why, for the history')
    .action(
      action(async (client, options, id: number, opts: { reason?: string }) => {
        const task = await client.tasks.release.mutate({ id, reason: opts.reason });
        if (options.json) printJson(task);
        else print(summary(task));
      }),
    );

  claimOptions(
    program
      .command('work')
      .description(
        'claim the next task, run <command> with it as JSON on stdin, heartbeat while it runs; complete it on exit 0, release it otherwise',
      )
      .argument('<command...>', 'the command and its arguments (after --)')
      .option('--loop', 'take the next task after each, until none is left'),
  ).action(
    action(async (client, options, argv: string[], opts: ClaimOptions & { loop?: boolean }) => {
      let failed: CliError | undefined;
      for (;;) {
        const task = await claim(client, opts);
        if (!task) {
          show(null, options.json);
          break;
        }
        const { code, signal } = await runWithHeartbeats(client, task, argv);
        const reason = `${argv.join(' ')} ${describeExit(code, signal)}`.slice(-2000);
        const done =
          code === 0
            ? await client.tasks.complete.mutate({ id: task.id })
            : await client.tasks.release.mutate({ id: task.id, reason });
        if (options.json) printJson(done);
        else print(summary(done));
        // The command's failure is the run's: scripts see its exit code.
        if (code !== 0) failed = new CliError(`task ${task.id} released: ${reason}`, code ?? EXIT.failure);
        if (!opts.loop) break;
      }
      if (failed) throw failed;
    }),
  );
}
