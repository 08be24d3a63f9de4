import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, type TestActor } from '../helpers/factories.js';
import { type Run, runProcess } from '../helpers/run-process.js';
import { ROOT } from '../helpers/spawn-server.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// `taskflow webhooks …` against a live server: the CLI is a client of the same procedures.
let t: TestApp;
let receiver: WebhookReceiver;
let url: string;
let owner: TestActor;

function taskflow(args: string[]): Promise<Run> {
  return runProcess(process.execPath, ['--import', 'tsx', 'server/cli/taskflow.ts', ...args], {
    cwd: ROOT,
    env: { TASKFLOW_URL: url, TASKFLOW_TOKEN: owner.token, NO_COLOR: '1' },
  });
}

function json<T = any>(run: Run): T {
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as T;
}

beforeAll(async () => {
  t = await createTestApp({ webhooks: { config: { allowPrivate: true }, pollMs: 100 } });
  await t.app.listen({ port: 0, host: '127.0.0.1' });
  url = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}`;
  receiver = await new WebhookReceiver().start();
  ({ owner } = await makeActors(t, { owner: 'cleo' }));
  await makeProject(t, owner, 'cli');
});
afterAll(async () => {
  await t.close();
  await receiver.stop();
});

describe('taskflow webhooks', () => {
  it('creates, lists, pings, shows deliveries, disables, rotates and deletes', async () => {
    const created = json(
      await taskflow([
        'webhooks',
        'create',
        receiver.url('/cli'),
        '--project',
        'cli',
        '--action',
        'created,completed',
        '--json',
      ]),
    );
    expect(created).toMatchObject({ project: 'cli', actions: ['created', 'completed'], enabled: true });
    receiver.secret('/cli', created.secret);
    const id = String(created.id);

    const list = await taskflow(['webhooks', 'list']);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(
      new RegExp(`^${id}\\s+cli\\s+enabled\\s+created,completed\\s+http://127`, 'm'),
    );
    expect(list.stdout).not.toMatch(/whsec_/);

    const ping = await taskflow(['webhooks', 'test', id]);
    expect(ping.stdout).toMatch(/^Ping ping_\S+ queued/);
    await receiver.waitFor(() => receiver.on('/cli').length === 1);
    expect(receiver.on('/cli')[0]).toMatchObject({ verified: true, json: { action: 'ping' } });
    let deliveries = '';
    await expect
      .poll(
        async () => {
          deliveries = (await taskflow(['webhooks', 'deliveries', id])).stdout;
          return deliveries;
        },
        { timeout: 15_000 },
      )
      .toMatch(/ping_\S+\s+1\s+200\s+\d+\s+succeeded/);

    const disabled = json(await taskflow(['webhooks', 'update', id, '--disable', '--json']));
    expect(disabled.enabled).toBe(false);
    const both = await taskflow(['webhooks', 'update', id, '--disable', '--enable']);
    expect(both.code).toBe(2);

    const rotated = await taskflow(['webhooks', 'rotate-secret', id]);
    expect(rotated.stdout).toMatch(/^New signing secret of webhook \d+ \(shown only now\): whsec_/);

    expect((await taskflow(['webhooks', 'delete', id])).stdout).toMatch(/deleted/);
    const gone = await taskflow(['webhooks', 'show', id]);
    expect(gone.code).toBe(4);
  }, 120_000);
});
