import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type RateLimitConfig } from '../../server/config.js';
import { createTestApp, expectErrorBody, type TestApp } from '../helpers/app.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('security headers and CORS', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({ allowedOrigins: ['http://localhost:3000', 'https://app.example.com'] });
  });
  afterAll(() => t.close());

  it('sends helmet headers with a CSP and no x-powered-by', async () => {
    const result = await t.rest('GET', '/health');
    expect(result.headers['content-security-policy']).toContain("default-src 'self'");
    expect(result.headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(result.headers['x-content-type-options']).toBe('nosniff');
    expect(result.headers['x-powered-by']).toBeUndefined();
  });

  it('allows listed origins, refuses others with 403 and the API error body, and ignores requests without an Origin', async () => {
    const listed = await t.rest('GET', '/health', { headers: { origin: 'https://app.example.com' } });
    expect(listed.status).toBe(200);
    expect(listed.headers['access-control-allow-origin']).toBe('https://app.example.com');

    const preflight = await t.app.inject({
      method: 'OPTIONS',
      url: '/api/tasks',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.statusCode).toBe(403);
    expect(preflight.headers['access-control-allow-origin']).toBeUndefined();

    const token = await t.token('cors-user');
    const refused = await t.rest('GET', '/api/tasks', { token, headers: { origin: 'https://evil.example' } });
    expectErrorBody(refused, 403);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();

    expect((await t.rest('GET', '/api/tasks', { token })).status).toBe(200);
  });
});

describe('request log line', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  const linesFor = (url: string) =>
    t.logs
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.msg === 'request completed' && line.url === url);

  it('writes one line per request: method, URL as sent, status, time, request id and the verified actor, never the token', async () => {
    const token = await t.token('log-reader');
    const rest = await t.rest('GET', '/api/tasks?limit=3', {
      token,
      headers: { 'x-request-id': 'log-test-1' },
    });
    expect(rest.status).toBe(200);
    const [line, ...more] = linesFor('/api/tasks?limit=3');
    expect(more).toEqual([]);
    expect(line).toMatchObject({
      method: 'GET',
      statusCode: 200,
      reqId: 'log-test-1',
      actorId: 'log-reader',
    });
    expect(line?.responseTime).toEqual(expect.any(Number));

    await t.rest('GET', '/api/tasks?limit=4');
    const [anonymous] = linesFor('/api/tasks?limit=4');
    expect(anonymous).toMatchObject({ method: 'GET', statusCode: 401 });
    expect(anonymous).not.toHaveProperty('actorId');

    expect(t.logs.join('\n')).not.toContain(token);
  });
});

describe('tRPC answers', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(() => t.close());

  it('sends a plain JSON answer as one body with its length, batch status and headers kept', async () => {
    const token = await t.token('trpc-reader');
    const single = await t.trpcQuery('tasks.list', {}, token);
    expect(single.status).toBe(200);
    expect(single.headers['content-length']).toBe(String(Buffer.byteLength(single.raw)));
    expect(single.headers['transfer-encoding']).toBeUndefined();
    expect(single.headers['content-type']).toContain('application/json');
    expect(single.headers.vary).toContain('trpc-accept');

    const input = encodeURIComponent(JSON.stringify({ 0: {}, 1: { id: 2_000_000_000 } }));
    const batch = await t.rest('GET', `/trpc/tasks.list,tasks.get?batch=1&input=${input}`, { token });
    expect(batch.status).toBe(207);
    expect(batch.headers['content-length']).toBe(String(Buffer.byteLength(batch.raw)));
    const [list, missing] = batch.body;
    expect(list.result.data.items).toEqual([]);
    expect(missing.error.data.code).toBe('NOT_FOUND');

    const anonymous = await t.trpcQuery('tasks.list', {});
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe('Bearer');

    const wrongMethod = await t.trpcMutation('tasks.list', {}, token);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET');
    expect(wrongMethod.body.error.data.code).toBe('METHOD_NOT_SUPPORTED');

    const badJson = await t.app.inject({
      method: 'POST',
      url: '/trpc/tasks.create',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      payload: '{"title":',
    });
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.data.code).toBe('BAD_REQUEST');
  });

  it('streams a batch as JSON lines when the client asks for it (httpBatchStreamLink)', async () => {
    const token = await t.token('trpc-streamer');
    const input = encodeURIComponent(JSON.stringify({ 0: {}, 1: { id: 2_000_000_000 } }));
    const streamed = await t.rest('GET', `/trpc/tasks.list,tasks.get?batch=1&input=${input}`, {
      token,
      headers: { 'trpc-accept': 'application/jsonl' },
    });
    expect(streamed.status).toBe(200);
    expect(streamed.headers['content-length']).toBeUndefined();
    const lines = streamed.raw.trim().split('\n');
    expect(lines.length).toBeGreaterThan(1);
    expect(streamed.raw).toContain('NOT_FOUND');
  });
});

describe('rate limits in memory', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp({
      rateLimit: { perActor: 5, perAnonymousIp: 3, redisUrl: null, windowMs: 60_000 },
    });
  });
  afterAll(() => t.close());

  it('answers 429 with Retry-After and the API error body once an actor used its minute, other actors unaffected', async () => {
    const token = await t.token('busy-agent');
    for (let i = 0; i < 5; i++) expect((await t.rest('GET', '/api/tasks', { token })).status).toBe(200);
    const limited = await t.rest('GET', '/api/tasks', { token });
    expectErrorBody(limited, 429, 'TOO_MANY_REQUESTS');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    const limitedTrpc = await t.trpcQuery('tasks.list', {}, token);
    expect(limitedTrpc.status).toBe(429);

    const other = await t.token('calm-agent');
    expect((await t.rest('GET', '/api/tasks', { token: other })).status).toBe(200);
  });

  it('limits callers without a valid token per IP, at the anonymous rate', async () => {
    for (let i = 0; i < 3; i++) expect((await t.rest('GET', '/api/health/db')).status).toBe(200);
    expectErrorBody(await t.rest('GET', '/api/health/db'), 429, 'TOO_MANY_REQUESTS');
    // Liveness stays reachable for orchestrators.
    expect((await t.rest('GET', '/health')).status).toBe(200);
  });
});

describe('rate limits shared through Redis', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const rateLimit = { perActor: 4, perAnonymousIp: 100, redisUrl: REDIS_URL, windowMs: 60_000 };
    a = await createTestApp({ rateLimit });
    b = await createTestApp({ rateLimit });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it('counts an actor across two instances: 4 requests spread over both, the fifth is 429 on either', async () => {
    const sub = `shared-${randomBytes(6).toString('hex')}`;
    // Both instances trust the same issuer in production; here each has its own JWKS, so sign per app.
    const onA = await a.token(sub);
    const onB = await b.token(sub);
    expect((await a.rest('GET', '/api/tasks', { token: onA })).status).toBe(200);
    expect((await b.rest('GET', '/api/tasks', { token: onB })).status).toBe(200);
    expect((await a.rest('GET', '/api/tasks', { token: onA })).status).toBe(200);
    expect((await b.rest('GET', '/api/tasks', { token: onB })).status).toBe(200);
    const limited = await a.rest('GET', '/api/tasks', { token: onA });
    expectErrorBody(limited, 429, 'TOO_MANY_REQUESTS');
    expect(limited.headers['retry-after']).toBeDefined();
    expectErrorBody(await b.rest('GET', '/api/tasks', { token: onB }), 429, 'TOO_MANY_REQUESTS');
  });
});

describe('rate limits reset after a short window', () => {
  it('spreads the per-minute rates over 10-second windows by default', () => {
    expect(loadConfig({}).rateLimit).toEqual({
      perActor: 200,
      perAnonymousIp: 50,
      windowMs: 10_000,
      redisUrl: null,
    });
    expect(
      loadConfig({ RATE_LIMIT_PER_MINUTE: '12', RATE_LIMIT_WINDOW_SECONDS: '5' }).rateLimit,
    ).toMatchObject({
      perActor: 1,
      windowMs: 5_000,
    });
  });

  it('at the default window, a burst over the limit is told to retry within 10 s', async () => {
    const defaults = loadConfig({ RATE_LIMIT_PER_MINUTE: '12' }).rateLimit as RateLimitConfig;
    const t = await createTestApp({ rateLimit: defaults });
    try {
      const token = await t.token('bursty');
      for (let i = 0; i < defaults.perActor; i++) {
        const answer = await t.rest('GET', '/api/tasks', { token });
        expect(answer.status).toBe(200);
        expect(Number(answer.headers['x-ratelimit-limit'])).toBe(2);
      }
      const limited = await t.rest('GET', '/api/tasks', { token });
      expectErrorBody(limited, 429, 'TOO_MANY_REQUESTS');
      const retryAfter = Number(limited.headers['retry-after']);
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(10);
      expect(Number(limited.headers['x-ratelimit-reset'])).toBeLessThanOrEqual(10);
    } finally {
      await t.close();
    }
  }, 60_000);

  for (const store of ['memory', 'Redis'] as const) {
    it(`lets an actor through again once Retry-After has passed (${store})`, async () => {
      const rateLimit = {
        perActor: 2,
        perAnonymousIp: 100,
        windowMs: 1_000,
        redisUrl: store === 'Redis' ? REDIS_URL : null,
      };
      const a = await createTestApp({ rateLimit });
      const b = await createTestApp({ rateLimit });
      try {
        const sub = `window-${randomBytes(6).toString('hex')}`;
        const onA = await a.token(sub);
        const onB = await b.token(sub);
        // Over the limit on instance a; with Redis, b shares the count.
        expect((await a.rest('GET', '/api/tasks', { token: onA })).status).toBe(200);
        expect((await a.rest('GET', '/api/tasks', { token: onA })).status).toBe(200);
        const limited = await a.rest('GET', '/api/tasks', { token: onA });
        expectErrorBody(limited, 429, 'TOO_MANY_REQUESTS');
        expect((await b.rest('GET', '/api/tasks', { token: onB })).status).toBe(
          store === 'Redis' ? 429 : 200,
        );
        const retryAfter = Number(limited.headers['retry-after']);
        expect(retryAfter).toBe(1);
        await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000 + 100));
        expect((await a.rest('GET', '/api/tasks', { token: onA })).status).toBe(200);
        expect((await b.rest('GET', '/api/tasks', { token: onB })).status).toBe(200);
      } finally {
        await a.close();
        await b.close();
      }
    }, 120_000);
  }
});
