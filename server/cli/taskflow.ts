#!/usr/bin/env node
/**
 * `taskflow`: the command line on the typed client. It calls the same tRPC procedures as the web
 * frontend and the MCP tools, so every rule and every audit row is the server's; nothing here
 * touches services or the database. Commands are in ./commands, what they print in ./output.ts.
 */
import { Command, CommanderError, Option } from 'commander';
import { parseSeconds } from './arguments.js';
import { DEFAULT_URL, type GlobalOptions } from './command.js';
import { registerPeopleCommands } from './commands/people.js';
import { registerQueueCommands } from './commands/queue.js';
import { registerTaskCommands } from './commands/tasks.js';
import { registerWatchCommand } from './commands/watch.js';
import { registerWebhookCommands } from './commands/webhooks.js';
import { registerWorkflowCommands } from './commands/workflow.js';
import { EXIT, reportFailure } from './failure.js';

function buildProgram(): Command {
  const program = new Command('taskflow')
    .description('TaskFlow from the command line: the same procedures as the web app and the MCP tools.')
    .addOption(new Option('--url <url>', 'server base URL').env('TASKFLOW_URL').default(DEFAULT_URL))
    .addOption(new Option('--token <jwt>', 'bearer token').env('TASKFLOW_TOKEN'))
    .option('--json', 'print JSON (results on stdout, errors on stderr)')
    .addOption(
      new Option(
        '--idempotency-key <key>',
        'key of the first change (later ones get -2, -3, …); rerun with it to replay',
      ).env('TASKFLOW_IDEMPOTENCY_KEY'),
    )
    .addOption(
      new Option('--retry-for <seconds>', 'keep retrying 429, 502-504 and lost connections this long')
        .env('TASKFLOW_RETRY_FOR')
        .argParser(parseSeconds)
        .default(30),
    )
    .exitOverride()
    .configureOutput({
      outputError: (message, write) => write(`taskflow: ${message.replace(/^error: /, '')}`),
    })
    .showSuggestionAfterError();
  registerTaskCommands(program);
  registerWorkflowCommands(program);
  registerPeopleCommands(program);
  registerQueueCommands(program);
  registerWatchCommand(program);
  registerWebhookCommands(program);
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
    const options = program.opts<Partial<GlobalOptions>>();
    return reportFailure(error, { url: options.url ?? DEFAULT_URL, json: options.json });
  }
}

// exitCode rather than exit(): a piped stdout must drain before the process ends.
process.exitCode = await main(process.argv);
