import type { LookupAddress } from 'node:dns';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';
import { makeActors, makeProject, makeTask, ok, type TestActor } from '../helpers/factories.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

// Without WEBHOOK_ALLOW_PRIVATE: receivers at loopback, private, link-local and metadata addresses
// are refused when the endpoint is created, and again when a connection is opened, so a host whose
// DNS answer changes after creation (rebinding) does not reach the private network either. Host
// names are resolved by a resolver this test controls.
// A documentation address (TEST-NET-1): public by the rules, never routed, so nothing leaves the machine.
const PUBLIC = '192.0.2.10';
const answers = new Map<string, string>([
  ['internal.test', '127.0.0.1'],
  ['metadata.test', '169.254.169.254'],
  ['public.test', PUBLIC],
  ['rebind.test', PUBLIC],
]);
const resolve = async (host: string): Promise<LookupAddress[]> => {
  const address = answers.get(host);
  if (!address) throw Object.assign(new Error(`no answer for ${host}`), { code: 'ENOTFOUND' });
  return [{ address, family: address.includes(':') ? 6 : 4 }];
};

let strict: TestApp;
let production: TestApp;
let receiver: WebhookReceiver;
let owner: TestActor;
let prodOwner: TestActor;

beforeAll(async () => {
  strict = await createTestApp({
    webhooks: { config: { allowPrivate: false, retryScheduleMs: [60_000] }, resolve, pollMs: 100 },
  });
  production = await createTestApp({
    webhooks: { config: { allowPrivate: false, requireHttps: true }, resolve },
  });
  receiver = await new WebhookReceiver().start();
  ({ owner } = await makeActors(strict, { owner: 'olive' }));
  ({ owner: prodOwner } = await makeActors(production, { owner: 'olive' }));
  await makeProject(strict, owner, 'guarded');
  await makeProject(production, prodOwner, 'guarded');
});
afterAll(async () => {
  await strict.close();
  await production.close();
  await receiver.stop();
});

describe('webhook URLs without WEBHOOK_ALLOW_PRIVATE', () => {
  it.each([
    ['loopback', `http://127.0.0.1:${8080}/hook`],
    ['a private network', 'http://10.1.2.3/hook'],
    ['the metadata service', 'http://169.254.169.254/latest/meta-data'],
    ['IPv6 loopback', 'http://[::1]:8080/hook'],
    ['an IPv4-mapped loopback', 'http://[::ffff:127.0.0.1]/hook'],
    ['a host name resolving to loopback', 'http://internal.test/hook'],
    ['a host name resolving to the metadata service', 'https://metadata.test/hook'],
  ])('refuses %s with a 400', async (_what, url) => {
    const answer = await strict.rest('POST', '/api/webhooks', {
      token: owner.token,
      body: { url, project: 'guarded' },
    });
    expectErrorBody(answer, 400, 'BAD_REQUEST');
    expect(answer.body.error).toMatch(/loopback, private, link-local or metadata/);
    const trpc = await strict.trpcMutation('webhooks.create', { url, project: 'guarded' }, owner.token);
    expect(trpc.body.error).toMatchObject({ data: { code: 'BAD_REQUEST', httpStatus: 400 } });
  });

  it('refuses a host that does not resolve, and one with credentials in its URL', async () => {
    for (const url of ['http://nowhere.test/', 'https://user:secret@public.test/']) {
      expectErrorBody(
        await strict.rest('POST', '/api/webhooks', { token: owner.token, body: { url, project: 'guarded' } }),
        400,
      );
    }
  });

  it('in production, refuses http:// and accepts https:// to a public host', async () => {
    const http = await production.rest('POST', '/api/webhooks', {
      token: prodOwner.token,
      body: { url: 'http://public.test/hook', project: 'guarded' },
    });
    expectErrorBody(http, 400, 'BAD_REQUEST');
    expect(http.body.error).toMatch(/https/);
    ok(
      await production.rest('POST', '/api/webhooks', {
        token: prodOwner.token,
        body: { url: 'https://public.test/hook', project: 'guarded' },
      }),
      201,
    );
  });

  it('refuses the connection when the DNS answer turns private after creation (rebinding)', async () => {
    const hook = ok(
      await strict.rest('POST', '/api/webhooks', {
        token: owner.token,
        body: { url: `http://rebind.test:${receiver.port}/rebound`, project: 'guarded' },
      }),
      201,
    );
    answers.set('rebind.test', '127.0.0.1');
    const task = await makeTask(strict, owner, { projectSlug: 'guarded' });
    const attempts = async () =>
      ok(await strict.rest('GET', `/api/webhooks/${hook.id}/deliveries`, { token: owner.token })).items;
    const events = ok(await strict.rest('GET', '/api/events?project=guarded', { token: owner.token })).items;
    const created = events.find(
      (e: { action: string; taskId: number }) => e.action === 'created' && e.taskId === task.id,
    );
    await expect
      .poll(async () => (await attempts()).map((x: { messageId: string }) => x.messageId), {
        timeout: 10_000,
      })
      .toContain(String(created.id));
    for (const attempt of await attempts()) {
      expect(attempt).toMatchObject({
        statusCode: null,
        state: 'pending',
        nextAttemptAt: expect.any(String),
      });
      expect(attempt.error).toMatch(/refused at connect: rebind\.test is a loopback, private/);
    }
    expect(receiver.received).toEqual([]);
  });
});
