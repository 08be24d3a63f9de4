import type { Command } from 'commander';
import { action } from '../command.js';
import { dash, print, printJson, projectTable } from '../output.js';

/** Who the token is (`whoami`) and what it reaches (`projects`). */
export function registerPeopleCommands(program: Command): void {
  program
    .command('whoami')
    .description('the worker your token is, with its role')
    .action(
      action(async (client, options) => {
        const me = await client.workers.me.query({});
        if (options.json) printJson(me);
        else {
          const capabilities = me.capabilities.length > 0 ? `, can ${me.capabilities.join(', ')}` : '';
          print(`${me.id} (${me.type}, ${me.role}${capabilities}): ${me.name} <${dash(me.email)}>`);
        }
      }),
    );

  program
    .command('projects')
    .description('projects you are a member of (every project, for admins)')
    .action(
      action(async (client, options) => {
        const projects = await client.projects.list.query({});
        if (options.json) printJson(projects);
        else print(projects.length > 0 ? projectTable(projects) : 'No projects.');
      }),
    );
}
