import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { DatabaseOptions } from '../db/client.js';
import { DEFAULT_RETRY_SCHEDULE_MS, parseRetrySchedule } from './services/webhooks/backoff.js';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const optionalUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional();

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `must be an integer from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));

export const DEFAULT_REQUEST_TIMEOUT_MS = 15_000;
/** The largest tRPC answer sent: a batch of list calls can otherwise ask for tens of megabytes. */
export const DEFAULT_MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** How long an agent's claim lasts without a heartbeat or progress, unless the claim names a length. */
export const DEFAULT_AGENT_LEASE_SECONDS = 600;
export const DEFAULT_MAX_CONNECTIONS = 1000;
/** How long a webhook receiver has to answer (SPEC §13: 10 s). */
export const DEFAULT_WEBHOOK_TIMEOUT_MS = 10_000;

/**
 * How long a procedure may wait (for the pool, a lock, a database that hangs) before it answers 503:
 * two thirds of the request timeout, so the answer is written well within the time a request has,
 * and within the grace a shutdown gives in-flight requests.
 */
export function procedureDeadlineMs(requestTimeoutMs: number): number {
  return Math.floor((requestTimeoutMs * 2) / 3);
}

const envSchema = z.object({
  PORT: integer(0, 65_535).default(8000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  DATABASE_LISTEN_URL: z
    .url({ protocol: /^postgres(ql)?$/, error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  DATA_DIR: z.string().min(1).default('./.taskflow'),
  AUTH_SERVER_URL: optionalUrl,
  AUTH_JWKS_URL: optionalUrl,
  AUTH_ISSUER: z.string().min(1).optional(),
  AUTH_AUDIENCE: z.string().min(1).optional(),
  AUTH_TOKEN_CACHE_SIZE: integer(0, 1_000_000).default(10_000),
  ALLOWED_ORIGINS: z.string().default('http://localhost:3000'),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  DB_POOL_MAX: integer(1, 1000).default(10),
  BODY_LIMIT_BYTES: integer(1024, 100 * 1024 * 1024).default(1024 * 1024),
  REQUEST_TIMEOUT_MS: integer(100, 600_000).default(DEFAULT_REQUEST_TIMEOUT_MS),
  MAX_ANSWER_BYTES: integer(64 * 1024, 1024 * 1024 * 1024).default(DEFAULT_MAX_ANSWER_BYTES),
  MAX_CONNECTIONS: integer(1, 1_000_000).default(DEFAULT_MAX_CONNECTIONS),
  STATEMENT_TIMEOUT_MS: integer(100, 600_000).default(5_000),
  REDIS_URL: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// or rediss:// URL' }).optional(),
  RATE_LIMIT_PER_MINUTE: integer(0, 10_000_000).default(1200),
  RATE_LIMIT_ANONYMOUS_PER_MINUTE: integer(0, 10_000_000).default(300),
  RATE_LIMIT_WINDOW_SECONDS: integer(1, 60).default(10),
  AGENT_LEASE_SECONDS: integer(10, 86_400).default(DEFAULT_AGENT_LEASE_SECONDS),
  WEBHOOK_ALLOW_PRIVATE: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  WEBHOOK_SENDERS: z.enum(['true', 'false'], { error: 'must be true or false' }).default('true'),
  WEBHOOK_RETRY_SCHEDULE: z
    .string()
    .transform((text, context) => {
      const schedule = parseRetrySchedule(text);
      if (!schedule) {
        context.addIssue({
          code: 'custom',
          message:
            'must be comma-separated delays such as 5s,30s,2m,10m,1h,3h (units ms, s, m, h; each up to 24h)',
        });
        return z.NEVER;
      }
      return schedule;
    })
    .optional(),
  WEBHOOK_TIMEOUT_MS: integer(100, 60_000).default(DEFAULT_WEBHOOK_TIMEOUT_MS),
  EVENT_STREAMS: z.enum(['process', 'inline'], { error: 'must be process or inline' }).optional(),
});

type Env = z.infer<typeof envSchema>;

export interface AuthConfig {
  /** Null in development mode: the server signs and verifies with its own key. */
  jwksUrl: string | null;
  issuer: string | null;
  audience: string | null;
  /** Verified tokens remembered (at most 60 s, never past `exp`); 0 verifies every request. */
  tokenCacheSize: number;
}

export interface Config {
  port: number;
  host: string;
  databaseUrl: string | null;
  /** A direct (session) connection for LISTEN, when DATABASE_URL goes through a transaction pooler. */
  databaseListenUrl: string | null;
  dataDir: string;
  auth: AuthConfig;
  allowedOrigins: string[];
  logLevel: Env['LOG_LEVEL'];
  nodeEnv: Env['NODE_ENV'];
  dbPoolMax: number;
  bodyLimitBytes: number;
  /** Larger tRPC answers are refused (400) instead of sent. */
  maxAnswerBytes: number;
  /** Open client connections the server accepts; further ones are closed at once. */
  maxConnections: number;
  requestTimeoutMs: number;
  statementTimeoutMs: number;
  /** Null switches rate limiting off. */
  rateLimit: RateLimitConfig | null;
  /** The lease of an agent's claim that names none. */
  agentLeaseSeconds: number;
  webhooks: WebhookConfig;
  /** Who writes REST event streams: a process of their own (PostgreSQL only), or the API process. */
  eventStreams: 'process' | 'inline';
}

export interface WebhookConfig {
  /** Receivers at loopback, private, link-local and metadata addresses are allowed (tests, intranets). */
  allowPrivate: boolean;
  /** Only https:// receivers (production). */
  requireHttps: boolean;
  /** Delays between attempts; the last repeats until a delivery is 24 h old. */
  retryScheduleMs: readonly number[];
  /** One attempt's limit. */
  timeoutMs: number;
  /** This instance sends due deliveries; when false, other instances on its database send them. */
  senders: boolean;
}

export interface RateLimitConfig {
  /** Requests per window per authenticated actor. */
  perActor: number;
  /** Requests per window per client IP without a valid token. */
  perAnonymousIp: number;
  /**
   * Length of the fixed window the counts reset after. Short, so a burst over the limit costs a wait
   * of seconds, not the rest of a minute.
   */
  windowMs: number;
  /** Shared counters across instances; in memory when null. */
  redisUrl: string | null;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** A rejected value is echoed to help, but never the credentials in it (`scheme://user:password@`). */
function redactCredentials(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/)?[\s\S]*@/i, '$1***@');
}

/** Parses the environment once; the rest of the program only sees the result. */
function perWindow(perMinute: number, windowSeconds: number): number {
  return Math.max(1, Math.ceil((perMinute * windowSeconds) / 60));
}

export function loadConfig(env: NodeJS.ProcessEnv): Config {
  // An empty variable means "not set", as in most shells' `VAR= command`.
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? 'environment');
    const raw = env[name];
    throw new ConfigError(
      `Invalid configuration: ${name} ${issue?.message ?? 'is invalid'}${raw === undefined ? '' : ` (got ${JSON.stringify(redactCredentials(raw))})`}`,
    );
  }
  const e = parsed.data;
  if (e.EVENT_STREAMS === 'process' && !e.DATABASE_URL) {
    throw new ConfigError(
      'Invalid configuration: EVENT_STREAMS=process needs DATABASE_URL (the embedded PGlite database lives in one process)',
    );
  }
  if (e.WEBHOOK_SENDERS === 'false' && !e.DATABASE_URL) {
    throw new ConfigError(
      'Invalid configuration: WEBHOOK_SENDERS=false needs DATABASE_URL (another instance on the same database sends the webhooks)',
    );
  }
  const serverOrigin = e.AUTH_SERVER_URL ? new URL(e.AUTH_SERVER_URL).origin : null;
  const jwksUrl =
    e.AUTH_JWKS_URL ?? (e.AUTH_SERVER_URL ? new URL('/api/auth/jwks', e.AUTH_SERVER_URL).href : null);
  if (!jwksUrl && e.NODE_ENV === 'production') {
    throw new ConfigError(
      'Invalid configuration: AUTH_SERVER_URL or AUTH_JWKS_URL must be set when NODE_ENV=production',
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL ?? null,
    databaseListenUrl: e.DATABASE_LISTEN_URL ?? null,
    dataDir: resolve(e.DATA_DIR),
    auth: {
      jwksUrl,
      issuer: e.AUTH_ISSUER ?? serverOrigin,
      audience: e.AUTH_AUDIENCE ?? serverOrigin,
      tokenCacheSize: e.AUTH_TOKEN_CACHE_SIZE,
    },
    allowedOrigins: e.ALLOWED_ORIGINS.split(',')
      .map((origin) => origin.trim())
      .filter(Boolean),
    logLevel: e.LOG_LEVEL,
    nodeEnv: e.NODE_ENV,
    dbPoolMax: e.DB_POOL_MAX,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    maxAnswerBytes: e.MAX_ANSWER_BYTES,
    maxConnections: e.MAX_CONNECTIONS,
    requestTimeoutMs: e.REQUEST_TIMEOUT_MS,
    statementTimeoutMs: e.STATEMENT_TIMEOUT_MS,
    rateLimit:
      e.RATE_LIMIT_PER_MINUTE === 0
        ? null
        : {
            // The per-minute rates, spread over windows of RATE_LIMIT_WINDOW_SECONDS.
            perActor: perWindow(e.RATE_LIMIT_PER_MINUTE, e.RATE_LIMIT_WINDOW_SECONDS),
            perAnonymousIp: perWindow(
              e.RATE_LIMIT_ANONYMOUS_PER_MINUTE || e.RATE_LIMIT_PER_MINUTE,
              e.RATE_LIMIT_WINDOW_SECONDS,
            ),
            windowMs: e.RATE_LIMIT_WINDOW_SECONDS * 1000,
            redisUrl: e.REDIS_URL ?? null,
          },
    agentLeaseSeconds: e.AGENT_LEASE_SECONDS,
    webhooks: {
      allowPrivate: e.WEBHOOK_ALLOW_PRIVATE === 'true',
      requireHttps: e.NODE_ENV === 'production',
      retryScheduleMs: e.WEBHOOK_RETRY_SCHEDULE ?? DEFAULT_RETRY_SCHEDULE_MS,
      timeoutMs: e.WEBHOOK_TIMEOUT_MS,
      senders: e.WEBHOOK_SENDERS === 'true',
    },
    eventStreams: e.EVENT_STREAMS ?? (e.DATABASE_URL ? 'process' : 'inline'),
  };
}

/** The stream process's pool: the shared feed's reads and the catch-up pages of resuming streams. */
const STREAM_POOL_MAX = 4;

/** `buildApp`'s `streamProcess` option: its own small pool on the API's database, when it has one. */
export function streamProcessOptions(
  config: Config,
): { database: Extract<DatabaseOptions, { kind: 'postgres' }> } | undefined {
  const database = databaseOptions(config);
  if (config.eventStreams !== 'process' || database.kind !== 'postgres') return undefined;
  return { database: { ...database, poolMax: STREAM_POOL_MAX } };
}

/** Where `npm run build` dumps a migrated PGlite data directory (server/cli/pglite-seed.ts). */
export const PGLITE_SEED = fileURLToPath(new URL('../db/pglite-seed.tar.gz', import.meta.url));

export function databaseOptions(config: Config): DatabaseOptions {
  return config.databaseUrl
    ? {
        kind: 'postgres',
        url: config.databaseUrl,
        ...(config.databaseListenUrl ? { listenUrl: config.databaseListenUrl } : {}),
        poolMax: config.dbPoolMax,
        statementTimeoutMs: config.statementTimeoutMs,
      }
    : { kind: 'pglite', dataDir: resolve(config.dataDir, 'pglite'), seedFile: PGLITE_SEED };
}
