import type { Command } from 'commander';
import { createTaskflowClient, type TaskflowClient } from '../../shared/client.js';
import { CliError, EXIT } from './failure.js';
import { retryingFetch } from './retrying-fetch.js';

export const DEFAULT_URL = 'http://127.0.0.1:8000';

/** The options every command has (`--url`, `--token`, `--json`, `--idempotency-key`, `--retry-for`). */
export interface GlobalOptions {
  url: string;
  token?: string;
  json?: boolean;
  idempotencyKey?: string;
  /** Seconds to keep retrying a request the server could not take. */
  retryFor: number;
}

/**
 * Runs an action with a client made from the global options; `--json` picks the output. `run` gets
 * commander's arguments: the positional ones, then the command's own options.
 */
export function action<A extends unknown[]>(
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
    const client = createTaskflowClient({
      url: options.url,
      token: options.token,
      fetch: retryingFetch({ budgetMs: options.retryFor * 1000, idempotencyKey: options.idempotencyKey }),
    });
    await run(client, options, ...(all.slice(0, -1) as A));
  };
}
