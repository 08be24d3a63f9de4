import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, expectErrorBody, type TestApp, trpcData } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(() => t.close());

describe('smoke', () => {
  it('creates a task over REST and reads it back over tRPC with identical JSON', async () => {
    const alice = await t.token('alice');
    const created = await t.rest('POST', '/api/tasks', { token: alice, body: { title: 'first' } });
    expect(created.status).toBe(201);
    const viaRest = await t.rest('GET', `/api/tasks/${created.body.id}`, { token: alice });
    const viaTrpc = await t.trpcQuery('tasks.get', { id: created.body.id }, alice);
    expect(trpcData(viaTrpc)).toEqual(viaRest.body);
    expect(JSON.stringify(trpcData(viaTrpc))).toBe(viaRest.raw);
  });

  it('answers 401 with the API error body without a token', async () => {
    expectErrorBody(await t.rest('GET', '/api/tasks'), 401, 'UNAUTHORIZED');
  });
});
