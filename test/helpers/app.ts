import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { buildApp } from '../../server/app.js';
import { createRemoteVerifier } from '../../server/auth/verifier.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { JwksServer, TEST_AUDIENCE, TEST_ISSUER } from './jwks-server.js';

export interface TokenOptions {
  role?: 'admin' | 'user';
  name?: string;
  email?: string;
}

export interface HttpResult {
  status: number;
  headers: LightMyRequestResponse['headers'];
  /** Parsed JSON body, or undefined for an empty one. */
  body: any;
  raw: string;
}

export interface TestApp {
  app: FastifyInstance;
  db: TestDatabase;
  jwks: JwksServer;
  token(sub: string, options?: TokenOptions): Promise<string>;
  rest(
    method: string,
    url: string,
    options?: { token?: string; body?: unknown; headers?: Record<string, string> },
  ): Promise<HttpResult>;
  trpcQuery(path: string, input: unknown, token?: string): Promise<HttpResult>;
  trpcMutation(path: string, input: unknown, token?: string): Promise<HttpResult>;
  close(): Promise<void>;
}

function toResult(response: LightMyRequestResponse): HttpResult {
  const raw = response.body;
  let body: unknown;
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
  }
  return { status: response.statusCode, headers: response.headers, body, raw };
}

/** The whole server on a fresh database, verifying tokens signed here against a JWKS served on a real port. */
export async function createTestApp(options: { cooldownMs?: number } = {}): Promise<TestApp> {
  const jwks = new JwksServer();
  await jwks.addKey('EdDSA');
  await jwks.start();
  const db = await createTestDatabase();
  const verifier = createRemoteVerifier({
    jwksUrl: jwks.url,
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    cooldownMs: options.cooldownMs ?? 30_000,
    timeoutMs: 1_000,
  });
  const app = await buildApp({
    config: {
      allowedOrigins: ['http://localhost:3000'],
      bodyLimitBytes: 1024 * 1024,
      requestTimeoutMs: 15_000,
      logLevel: 'silent',
      nodeEnv: 'test',
    },
    database: db.database,
    verifier,
  });
  await app.ready();

  const headersFor = (token?: string, extra: Record<string, string> = {}) => ({
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  });

  return {
    app,
    db,
    jwks,
    token: (sub, tokenOptions = {}) =>
      jwks.sign({
        sub,
        role: tokenOptions.role ?? 'user',
        name: tokenOptions.name ?? sub,
        ...(tokenOptions.email ? { email: tokenOptions.email } : {}),
      }),
    rest: async (method, url, requestOptions = {}) => {
      const hasBody = requestOptions.body !== undefined;
      const response = await app.inject({
        method: method as 'GET',
        url,
        headers: headersFor(requestOptions.token, {
          ...(hasBody ? { 'content-type': 'application/json' } : {}),
          ...requestOptions.headers,
        }),
        ...(hasBody ? { payload: JSON.stringify(requestOptions.body) } : {}),
      });
      return toResult(response);
    },
    trpcQuery: async (path, input, token) => {
      const query = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
      return toResult(
        await app.inject({ method: 'GET', url: `/trpc/${path}${query}`, headers: headersFor(token) }),
      );
    },
    trpcMutation: async (path, input, token) =>
      toResult(
        await app.inject({
          method: 'POST',
          url: `/trpc/${path}`,
          headers: headersFor(token, { 'content-type': 'application/json' }),
          payload: JSON.stringify(input ?? null),
        }),
      ),
    close: async () => {
      await app.close();
      await db.cleanup();
      await jwks.stop();
    },
  };
}

/** Asserts the SPEC §6 REST error body; every REST error in the suite goes through here. */
export function expectErrorBody(result: HttpResult, status: number, code?: string): void {
  expect(result.status, result.raw).toBe(status);
  expect(result.body).toMatchObject({
    error: expect.any(String),
    code: code ?? expect.any(String),
    status_code: status,
    requestId: expect.any(String),
  });
  expect(Object.keys(result.body).sort()).toEqual(
    expect.arrayContaining(['code', 'error', 'requestId', 'status_code']),
  );
  for (const key of Object.keys(result.body)) {
    expect(['code', 'error', 'requestId', 'status_code', 'issues']).toContain(key);
  }
  expect(result.headers['x-request-id']).toBe(result.body.requestId);
  expect(result.raw).not.toMatch(/\bat .+\.(ts|js):\d+|select |insert into|update "|postgres|drizzle/i);
  if (status === 401) expect(result.headers['www-authenticate']).toBe('Bearer');
}

/** The data of a tRPC (non-batched) success response. */
export function trpcData<T = any>(result: HttpResult): T {
  expect(result.status, result.raw).toBe(200);
  return result.body.result.data as T;
}
