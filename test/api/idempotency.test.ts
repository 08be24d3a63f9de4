import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { purgeExpired } from '../../server/services/idempotency-service.js';
import { createTestApp, expectErrorBody, type TestApp, trpcData } from '../helpers/app.js';
import { auditRows, makeActor, ok, query, type TestActor } from '../helpers/factories.js';

let t: TestApp;
let alice: TestActor;
let bob: TestActor;
beforeAll(async () => {
  t = await createTestApp();
  alice = await makeActor(t, 'idem-alice');
  bob = await makeActor(t, 'idem-bob');
});
afterAll(() => t.close());

const create = (actor: TestActor, key: string, body: Record<string, unknown>) =>
  t.rest('POST', '/api/tasks', { token: actor.token, body, headers: { 'idempotency-key': key } });

async function tasksTitled(title: string): Promise<number> {
  const [row] = await query<{ n: number }>(
    t,
    sql`select count(*)::int as n from tasks where title = ${title}`,
  );
  return row?.n ?? 0;
}

describe('Idempotency-Key on REST mutations', () => {
  it('creates one task for 10 concurrent copies of a create with the same key, and answers each with it', async () => {
    const title = 'idempotent create';
    const answers = await Promise.all(Array.from({ length: 10 }, () => create(alice, 'create-1', { title })));
    const ids = new Set(answers.map((answer) => ok(answer, 201).id));
    expect(ids.size).toBe(1);
    expect(await tasksTitled(title)).toBe(1);
    const [id] = [...ids];
    expect(await auditRows(t, { taskId: id })).toHaveLength(1);
    expect(new Set(answers.map((answer) => answer.raw)).size).toBe(1);
  });

  it('replays the first response to a retry without repeating the effect or its audit row', async () => {
    const first = ok(await create(alice, 'create-2', { title: 'retried' }), 201);
    const started = ok(
      await t.rest('POST', `/api/tasks/${first.id}/start`, {
        token: alice.token,
        headers: { 'idempotency-key': 's-1' },
      }),
    );
    const retry = ok(
      await t.rest('POST', `/api/tasks/${first.id}/start`, {
        token: alice.token,
        headers: { 'idempotency-key': 's-1' },
      }),
    );
    expect(retry).toEqual(started);
    expect((await auditRows(t, { taskId: first.id })).map((row) => row.action)).toEqual([
      'created',
      'started',
    ]);
  });

  it('refuses the same key with a different request with 422, changing nothing', async () => {
    ok(await create(alice, 'create-3', { title: 'original' }), 201);
    const other = await create(alice, 'create-3', { title: 'something else' });
    expectErrorBody(other, 422, 'UNPROCESSABLE_CONTENT');
    expect(await tasksTitled('something else')).toBe(0);
  });

  it('scopes keys to the actor: the same key from another actor is a new request', async () => {
    const mine = ok(await create(alice, 'shared-key', { title: 'per actor' }), 201);
    const theirs = ok(await create(bob, 'shared-key', { title: 'per actor' }), 201);
    expect(theirs.id).not.toBe(mine.id);
    expect(theirs.createdBy).toBe('idem-bob');
  });

  it('forgets keys after 24 hours', async () => {
    const first = ok(await create(alice, 'old-key', { title: 'expires' }), 201);
    await query(
      t,
      sql`update idempotency_keys set created_at = now() - interval '25 hours' where actor_id = ${alice.id} and key = 'old-key'`,
    );
    const again = ok(await create(alice, 'old-key', { title: 'expires' }), 201);
    expect(again.id).not.toBe(first.id);
  });

  it('purges keys older than 24 hours and keeps the others', async () => {
    ok(await create(alice, 'to-purge', { title: 'purged key' }), 201);
    ok(await create(alice, 'to-keep', { title: 'kept key' }), 201);
    await query(
      t,
      sql`update idempotency_keys set created_at = now() - interval '25 hours' where actor_id = ${alice.id} and key = 'to-purge'`,
    );
    await purgeExpired(t.db.database.db);
    const keys = await query<{ key: string }>(
      t,
      sql`select key from idempotency_keys where actor_id = ${alice.id} and key in ('to-purge', 'to-keep')`,
    );
    expect(keys.map((row) => row.key)).toEqual(['to-keep']);
  });

  it('does not keep a key whose request failed, so a corrected retry goes through', async () => {
    expectErrorBody(await create(alice, 'fails-first', { title: 'x', projectSlug: 'no-such-project' }), 404);
    // A different body under the same key is accepted: nothing was stored for the failed one.
    ok(await create(alice, 'fails-first', { title: 'fixed' }), 201);
  });

  it('rejects a malformed key with 400', async () => {
    expectErrorBody(await create(alice, 'has spaces in it', { title: 'x' }), 400, 'BAD_REQUEST');
    expect(await tasksTitled('x')).toBe(0);
  });
});

describe('the idempotencyKey input field on tRPC', () => {
  it('replays a tRPC create retried with the same idempotencyKey', async () => {
    const input = { title: 'trpc retry', idempotencyKey: 'trpc-1' };
    const first = trpcData(await t.trpcMutation('tasks.create', input, alice.token));
    const second = trpcData(await t.trpcMutation('tasks.create', input, alice.token));
    expect(second).toEqual(first);
    expect(await tasksTitled('trpc retry')).toBe(1);
  });

  it('shares keys between the surfaces: a REST retry of a tRPC call replays it', async () => {
    const viaTrpc = trpcData(
      await t.trpcMutation(
        'tasks.create',
        { title: 'both surfaces', idempotencyKey: 'cross-1' },
        alice.token,
      ),
    );
    const viaRest = ok(await create(alice, 'cross-1', { title: 'both surfaces' }), 201);
    expect(viaRest).toEqual(viaTrpc);
  });
});

describe('claims repeated by their holder', () => {
  it('replays a claim retried with its key, refuses one without it as 409 ALREADY_HELD, and audits one start', async () => {
    const task = ok(await create(alice, 'claim-me', { title: 'claim twice' }), 201);
    const claim = () =>
      t.rest('POST', `/api/tasks/${task.id}/start`, {
        token: alice.token,
        headers: { 'idempotency-key': 'claim-key' },
      });
    const first = ok(await claim());
    expect(ok(await claim())).toEqual(first);
    const again = await t.rest('POST', `/api/tasks/${task.id}/start`, { token: alice.token });
    expectErrorBody(again, 409, 'CONFLICT');
    expect(again.body.reason).toBe('ALREADY_HELD');
    expect((await auditRows(t, { taskId: task.id })).map((row) => row.action)).toEqual([
      'created',
      'started',
    ]);
    expectErrorBody(await t.rest('POST', `/api/tasks/${task.id}/start`, { token: bob.token }), 404);
  });
});
