import { type Command, InvalidArgumentError } from 'commander';
import { AUDIT_ACTIONS, type RouterInputs } from '../../../shared/client.js';
import { listOf, parseInteger } from '../arguments.js';
import { action } from '../command.js';
import { attemptTable, dash, print, printJson, webhookTable } from '../output.js';

function parseWebhookId(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('must be a webhook id');
  return Number(value);
}

const actionsOption = [
  '--action <action>',
  'only these actions; repeat or comma-separate (default: all)',
] as const;

/** `taskflow webhooks …`: endpoints of projects you own (every one, for admins). */
export function registerWebhookCommands(program: Command): void {
  const webhooks = program
    .command('webhooks')
    .description('signed HTTP calls to your systems when something changes (project owners, admins)');

  webhooks
    .command('list')
    .description('endpoints you manage (never their secrets)')
    .option('--project <slug>', 'endpoints of one project')
    .action(
      action(async (client, options, filters: { project?: string }) => {
        const list = await client.webhooks.list.query({ project: filters.project });
        if (options.json) printJson(list);
        else print(list.length > 0 ? webhookTable(list) : 'No webhooks.');
      }),
    );

  webhooks
    .command('create')
    .description('add an endpoint; prints its signing secret, this once')
    .argument('<url>', 'https URL of the receiver')
    .option('--project <slug>', 'events of this project (without: every event, admins only)')
    .option(actionsOption[0], actionsOption[1], listOf(AUDIT_ACTIONS))
    .option('--description <text>', 'what it is for')
    .action(
      action(
        async (
          client,
          options,
          url: string,
          flags: {
            project?: string;
            action?: RouterInputs['webhooks']['create']['actions'];
            description?: string;
          },
        ) => {
          const created = await client.webhooks.create.mutate({
            url,
            project: flags.project,
            actions: flags.action,
            description: flags.description,
          });
          if (options.json) printJson(created);
          else {
            print(
              `Webhook ${created.id} sends ${dash(created.project ?? 'every project')} events to ${created.url}`,
            );
            print(`Signing secret (shown only now): ${created.secret}`);
          }
        },
      ),
    );

  webhooks
    .command('show')
    .description('one endpoint, with why it was disabled if it was')
    .argument('<id>', 'webhook id', parseWebhookId)
    .action(
      action(async (client, options, id: number) => {
        const hook = await client.webhooks.get.query({ id });
        if (options.json) printJson(hook);
        else print(webhookTable([hook]));
      }),
    );

  webhooks
    .command('update')
    .description('change the URL, the actions, the description, or enable/disable it')
    .argument('<id>', 'webhook id', parseWebhookId)
    .option('--url <url>', 'a new receiver URL')
    .option(actionsOption[0], actionsOption[1], listOf(AUDIT_ACTIONS))
    .option('--all-actions', 'send every action again')
    .option('--description <text>', 'what it is for')
    .option('--enable', 'enable it (again)')
    .option('--disable', 'stop sending to it')
    .action(
      action(
        async (
          client,
          options,
          id: number,
          flags: {
            url?: string;
            action?: RouterInputs['webhooks']['update']['actions'];
            allActions?: boolean;
            description?: string;
            enable?: boolean;
            disable?: boolean;
          },
        ) => {
          if (flags.enable && flags.disable)
            throw new InvalidArgumentError('--enable or --disable, not both');
          const updated = await client.webhooks.update.mutate({
            id,
            url: flags.url,
            actions: flags.allActions ? [] : flags.action,
            description: flags.description,
            enabled: flags.enable ? true : flags.disable ? false : undefined,
          });
          if (options.json) printJson(updated);
          else print(webhookTable([updated]));
        },
      ),
    );

  webhooks
    .command('delete')
    .description('remove an endpoint and what is still queued for it')
    .argument('<id>', 'webhook id', parseWebhookId)
    .action(
      action(async (client, options, id: number) => {
        await client.webhooks.delete.mutate({ id });
        if (options.json) printJson({ deleted: id });
        else print(`Webhook ${id} deleted.`);
      }),
    );

  webhooks
    .command('rotate-secret')
    .description('a new signing secret, printed this once; the old one stops at once')
    .argument('<id>', 'webhook id', parseWebhookId)
    .action(
      action(async (client, options, id: number) => {
        const rotated = await client.webhooks.rotateSecret.mutate({ id });
        if (options.json) printJson(rotated);
        else print(`New signing secret of webhook ${id} (shown only now): ${rotated.secret}`);
      }),
    );

  webhooks
    .command('test')
    .description('send a signed ping now')
    .argument('<id>', 'webhook id', parseWebhookId)
    .action(
      action(async (client, options, id: number) => {
        const sent = await client.webhooks.test.mutate({ id });
        if (options.json) printJson(sent);
        else print(`Ping ${sent.messageId} queued; see \`taskflow webhooks deliveries ${id}\`.`);
      }),
    );

  webhooks
    .command('deliveries')
    .description('attempts, newest first: time, HTTP status, duration, error, next retry')
    .argument('<id>', 'webhook id', parseWebhookId)
    .option('--limit <n>', 'page size, 1-100', parseInteger)
    .option('--cursor <cursor>', 'the next page (printed under a full page)')
    .action(
      action(async (client, options, id: number, page: { limit?: number; cursor?: string }) => {
        const result = await client.webhooks.deliveries.query({ id, limit: page.limit, cursor: page.cursor });
        if (options.json) printJson(result);
        else {
          print(result.items.length > 0 ? attemptTable(result.items) : 'No attempts yet.');
          if (result.nextCursor) print(`More: --cursor ${result.nextCursor}`);
        }
      }),
    );
}
