import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_CALLS } from '../../shared/limits.js';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';

const input = (value: unknown) => encodeURIComponent(JSON.stringify(value));

/** A batch of `n` calls of `path`, each with `each(i)` as input. */
function batch(path: string, n: number, each: (i: number) => unknown) {
  const paths = Array.from({ length: n }, () => path).join(',');
  const inputs = Object.fromEntries(Array.from({ length: n }, (_, i) => [i, each(i)]));
  return { url: `/trpc/${paths}?batch=1`, inputs };
}

describe('calls per tRPC batch', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it(`runs a batch of ${MAX_BATCH_CALLS} calls and refuses one more with 400, creating nothing`, async () => {
    const token = await t.token('batcher');
    const full = batch('tasks.create', MAX_BATCH_CALLS, (i) => ({ title: `full ${i}` }));
    const accepted = await t.rest('POST', full.url, { token, body: full.inputs });
    expect(accepted.status).toBe(200);
    expect(accepted.body).toHaveLength(MAX_BATCH_CALLS);

    const over = batch('tasks.create', MAX_BATCH_CALLS + 1, (i) => ({ title: `over ${i}` }));
    const refused = await t.rest('POST', over.url, { token, body: over.inputs });
    expect(refused.status).toBe(400);
    expect(refused.body.error).toMatchObject({
      message: 'Batch call exceeds maximum size',
      data: { code: 'BAD_REQUEST', httpStatus: 400 },
    });
    const listed = await t.trpcQuery('tasks.list', { limit: 100 }, token);
    const titles: string[] = listed.body.result.data.items.map((task: { title: string }) => task.title);
    expect(titles.filter((title) => title.startsWith('full'))).toHaveLength(MAX_BATCH_CALLS);
    expect(titles.filter((title) => title.startsWith('over'))).toEqual([]);
  });
});

describe('rate limit of tRPC batches', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      rateLimit: { perActor: 30, perAnonymousIp: 30, redisUrl: null, windowMs: 60_000 },
    });
  });
  afterAll(() => t.close());

  it('counts every call of a batch, and refuses the batch that would go over with 429', async () => {
    const token = await t.token('batch-spender');
    const gets = batch('tasks.list', MAX_BATCH_CALLS, () => ({}));
    const first = await t.rest('GET', `${gets.url}&input=${input(gets.inputs)}`, { token });
    expect(first.status).toBe(200);
    expect(first.headers['x-ratelimit-remaining']).toBe(String(30 - MAX_BATCH_CALLS));

    const second = await t.rest('GET', `${gets.url}&input=${input(gets.inputs)}`, { token });
    expectErrorBody(second, 429, 'TOO_MANY_REQUESTS');
    expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
    expect((await t.trpcQuery('tasks.list', {}, token)).status).toBe(429);

    // A single call counts one.
    const other = await t.token('single-caller');
    const single = await t.trpcQuery('tasks.list', {}, other);
    expect(single.headers['x-ratelimit-remaining']).toBe('29');
  });
});

describe('size of one tRPC answer', () => {
  const limit = 64 * 1024;
  let t: TestApp;
  let token: string;
  beforeAll(async () => {
    t = await createTestApp({ maxAnswerBytes: limit });
    token = await t.token('big-writer');
    // Ten tasks of 9 KB each, made five at a time (their answers stay under the limit): one list
    // of them all is over it, a page of three is not.
    for (const half of [0, 5]) {
      const five = batch('tasks.create', 5, (i) => ({
        title: `big ${half + i}`,
        description: 'x'.repeat(9_000),
      }));
      expect((await t.rest('POST', five.url, { token, body: five.inputs })).status).toBe(200);
    }
  });
  afterAll(() => t.close());

  it('answers a list under the limit', async () => {
    const page = await t.trpcQuery('tasks.list', { limit: 3 }, token);
    expect(page.status).toBe(200);
    expect(page.body.result.data.items).toHaveLength(3);
  });

  it('refuses an answer over the limit with 400 naming it, in the error shape, for a call or a batch', async () => {
    const all = await t.trpcQuery('tasks.list', { limit: 100 }, token);
    expect(all.status).toBe(400);
    expect(Buffer.byteLength(all.raw)).toBeLessThan(2_000);
    expect(all.body.error).toMatchObject({
      message: expect.stringMatching(/^The answer would be \d+ bytes, over the 65536-byte limit/),
      data: { code: 'BAD_REQUEST', httpStatus: 400, requestId: all.headers['x-request-id'] },
    });

    const pages = batch('tasks.list', 3, () => ({ limit: 3 }));
    const batched = await t.rest('GET', `${pages.url}&input=${input(pages.inputs)}`, { token });
    expect(batched.status).toBe(400);
    expect(batched.body).toHaveLength(3);
    for (const answer of batched.body) expect(answer.error.data.code).toBe('BAD_REQUEST');
  });
});
