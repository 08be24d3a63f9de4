import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { type AppOptions, buildApp } from '../../server/app.js';
import { createRemoteVerifier, type TokenVerifier } from '../../server/auth/verifier.js';
import type { RateLimitConfig, WebhookConfig } from '../../server/config.js';
import { DEFAULT_RETRY_SCHEDULE_MS } from '../../server/services/webhooks/index.js';
import { ERROR_REASONS } from '../../shared/errors.js';
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
  /** Every log line the app wrote (JSON, level info and up). */
  logs: string[];
  /** The raw body of every 4xx/5xx answer sent through these helpers. */
  errorBodies: string[];
  close(): Promise<void>;
}

function toResult(response: LightMyRequestResponse): HttpResult {
  return result(response.statusCode, response.headers, response.body);
}

function result(status: number, headers: HttpResult['headers'], raw: string): HttpResult {
  let body: unknown;
  if (raw.length > 0) {
    try {
      body = JSON.parse(raw);
    } catch {
      body = raw;
    }
  }
  return { status, headers, body, raw };
}

export interface TestAppOptions {
  /** JWKS refetch cool-down of the verifier (default 30 s). */
  cooldownMs?: number;
  /** How long the verifier uses a fetched JWKS (default: the verifier's own). */
  cacheMaxAgeMs?: number;
  /** Verify with this instead of a verifier on the test JWKS server (e.g. one pointed at Better Auth). */
  verifier?: TokenVerifier;
  /** Serve on a loopback port and send every request over real HTTP instead of `app.inject`. */
  listen?: boolean;
  /** Rate limits (off unless given). */
  rateLimit?: RateLimitConfig;
  /** CORS allow-list (default http://localhost:3000). */
  allowedOrigins?: string[];
  /** MAX_CONNECTIONS (default 1000). */
  maxConnections?: number;
  /** REQUEST_TIMEOUT_MS (default 15 000); procedures answer 503 at two thirds of it. */
  requestTimeoutMs?: number;
  /** MAX_ANSWER_BYTES (default 4 MiB). */
  maxAnswerBytes?: number;
  /** Event stream timings and caps. */
  events?: AppOptions['events'];
  /**
   * Write REST event streams in the API process even on PostgreSQL (where, as `npm start` does,
   * they go to a stream process by default).
   */
  inlineStreams?: boolean;
  /** Webhook settings (default: private addresses refused, the SPEC's schedule, 10 s time-out). */
  webhooks?: { config?: Partial<WebhookConfig> } & AppOptions['webhooks'];
}

/** The whole server on a fresh database, verifying tokens signed here against a JWKS served on a real port. */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const jwks = new JwksServer();
  await jwks.addKey('EdDSA');
  await jwks.start();
  const db = await createTestDatabase();
  const verifier =
    options.verifier ??
    createRemoteVerifier({
      jwksUrl: jwks.url,
      issuer: TEST_ISSUER,
      audience: TEST_AUDIENCE,
      cooldownMs: options.cooldownMs ?? 30_000,
      timeoutMs: 1_000,
      ...(options.cacheMaxAgeMs === undefined ? {} : { cacheMaxAgeMs: options.cacheMaxAgeMs }),
    });
  // Every log line and every error body is kept, and scanned for leaks when the app closes.
  const logs: string[] = [];
  const errorBodies: string[] = [];
  const app = await buildApp({
    config: {
      allowedOrigins: options.allowedOrigins ?? ['http://localhost:3000'],
      bodyLimitBytes: 1024 * 1024,
      requestTimeoutMs: options.requestTimeoutMs ?? 15_000,
      logLevel: 'info',
      rateLimit: options.rateLimit ?? null,
      ...(options.maxAnswerBytes === undefined ? {} : { maxAnswerBytes: options.maxAnswerBytes }),
      ...(options.maxConnections ? { maxConnections: options.maxConnections } : {}),
      ...(options.webhooks?.config
        ? {
            webhooks: {
              allowPrivate: false,
              requireHttps: false,
              retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
              timeoutMs: 10_000,
              senders: true,
              ...options.webhooks.config,
            },
          }
        : {}),
    },
    database: db.database,
    verifier,
    logger: { level: 'info', stream: { write: (line: string) => void logs.push(line) } },
    ...(options.events ? { events: options.events } : {}),
    ...(db.url && !options.inlineStreams
      ? { streamProcess: { database: { kind: 'postgres' as const, url: db.url, poolMax: 4 } } }
      : {}),
    ...(options.webhooks ? { webhooks: webhookTuning(options.webhooks) } : {}),
  });
  await app.ready();
  const baseUrl = options.listen ? await app.listen({ port: 0, host: '127.0.0.1' }) : null;

  // One way out for every helper: `app.inject`, or a real socket when `listen` is set.
  const send = async (
    method: string,
    url: string,
    headers: Record<string, string>,
    payload?: string,
  ): Promise<HttpResult> => {
    if (!baseUrl) {
      return toResult(
        await app.inject({
          method: method as 'GET',
          url,
          headers,
          ...(payload === undefined ? {} : { payload }),
        }),
      );
    }
    const response = await fetch(`${baseUrl}${url}`, {
      method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
    });
    return result(response.status, Object.fromEntries(response.headers), await response.text());
  };
  const sendAndKeep = async (...args: Parameters<typeof send>): Promise<HttpResult> => {
    const answer = await send(...args);
    if (answer.status >= 400) errorBodies.push(answer.raw);
    return answer;
  };

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
    rest: (method, url, requestOptions = {}) => {
      const hasBody = requestOptions.body !== undefined;
      return sendAndKeep(
        method,
        url,
        headersFor(requestOptions.token, {
          ...(hasBody ? { 'content-type': 'application/json' } : {}),
          ...requestOptions.headers,
        }),
        hasBody ? JSON.stringify(requestOptions.body) : undefined,
      );
    },
    trpcQuery: (path, input, token) => {
      const query = input === undefined ? '' : `?input=${encodeURIComponent(JSON.stringify(input))}`;
      return sendAndKeep('GET', `/trpc/${path}${query}`, headersFor(token));
    },
    trpcMutation: (path, input, token) =>
      sendAndKeep(
        'POST',
        `/trpc/${path}`,
        headersFor(token, { 'content-type': 'application/json' }),
        JSON.stringify(input ?? null),
      ),
    logs,
    errorBodies,
    close: async () => {
      await app.close();
      await db.cleanup();
      await jwks.stop();
      const leaks = [...logs, ...errorBodies].flatMap(findLeaks);
      expect(leaks, 'stack traces, SQL or tokens in a log line or an error body').toEqual([]);
    },
  };
}

function webhookTuning(options: NonNullable<TestAppOptions['webhooks']>): AppOptions['webhooks'] {
  const { config: _config, ...tuning } = options;
  return tuning;
}

const LEAKS: [string, RegExp][] = [
  ['webhook secret', /whsec_[A-Za-z0-9+/]{16,}/],
  ['stack trace', /\bat [^\s"]+ \(?[^\s"]*:\d+:\d+\)?|"stack"\s*:/],
  [
    'SQL or driver text',
    /Failed query|syntax error at or near|violates (foreign key|check|unique|not-null)|relation "|DrizzleQueryError|PostgresError|"(tasks|audit_log|workers|projects|project_members|idempotency_keys)"\./i,
  ],
  ['JWT', /eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/],
];

/** What in `text` looks like a stack trace, SQL/driver text or a token: none may reach a client or a log. */
export function findLeaks(text: string): string[] {
  return LEAKS.filter(([, pattern]) => pattern.test(text)).map(([what]) => `${what}: ${text.slice(0, 300)}`);
}

/** Asserts the REST error body; every REST error in the suite goes through here. */
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
    expect(['code', 'error', 'requestId', 'status_code', 'reason', 'issues']).toContain(key);
  }
  if ('reason' in result.body) expect(Object.keys(ERROR_REASONS)).toContain(result.body.reason);
  expect(result.headers['x-request-id']).toBe(result.body.requestId);
  expect(result.raw).not.toMatch(/\bat .+\.(ts|js):\d+|select |insert into|update "|postgres|drizzle/i);
  if (status === 401) expect(result.headers['www-authenticate']).toBe('Bearer');
}

/** The data of a tRPC (non-batched) success response. */
export function trpcData<T = any>(result: HttpResult): T {
  expect(result.status, result.raw).toBe(200);
  return result.body.result.data as T;
}
