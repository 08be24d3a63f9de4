import type { IncomingMessage, ServerResponse } from 'node:http';
import cors from '@fastify/cors';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import helmet, { type HelmetOptions } from 'helmet';
import { verifyRequest } from './auth/bearer.js';
import type { TokenVerifier } from './auth/verifier.js';
import type { RateLimitConfig } from './config.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** How many calls a request to this route carries, each counted by the rate limit (default 1). */
    callCount?: (request: FastifyRequest) => number;
  }
}

export interface SecurityOptions {
  allowedOrigins: string[];
  rateLimit: RateLimitConfig | null;
  verifier: TokenVerifier;
}

class OriginNotAllowed extends Error {
  statusCode = 403;
  constructor(origin: string) {
    super(`Origin ${origin} is not allowed`);
  }
}

/**
 * The headers helmet sets for these options, computed once: they depend on nothing in the request
 * (no CSP nonces), and running helmet's dozen middlewares per request is a measurable share of a
 * small request's cost (@fastify/helmet even rebuilds helmet per request).
 */
function helmetHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const response = {
    setHeader: (name: string, value: unknown) => {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader: (name: string) => {
      delete headers[name.toLowerCase()];
    },
  };
  helmet(options)({} as IncomingMessage, response as unknown as ServerResponse, (error?: unknown) => {
    if (error) throw error;
  });
  return headers;
}

/** Security headers, the CORS allow-list and rate limits, for every route. */
export async function registerSecurity(app: FastifyInstance, options: SecurityOptions): Promise<void> {
  const securityHeaders = helmetHeaders({
    // Swagger UI at /docs loads only its own scripts; it needs inline styles and data: images.
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        frameAncestors: ["'none'"],
        objectSrc: ["'none'"],
        upgradeInsecureRequests: null,
      },
    },
    crossOriginEmbedderPolicy: false,
  });
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(securityHeaders);
    done();
  });

  const allowed = new Set(options.allowedOrigins);
  await app.register(cors, {
    // Callers without an Origin (curl, agents, servers) are not browsers and pass; a browser on an
    // origin not on the list is refused outright rather than left to guess from missing headers.
    origin: (origin, callback) => {
      if (!origin || allowed.has(origin)) callback(null, true);
      else callback(new OriginNotAllowed(origin), false);
    },
    credentials: true,
    exposedHeaders: [
      'x-request-id',
      'retry-after',
      'x-ratelimit-limit',
      'x-ratelimit-remaining',
      'x-ratelimit-reset',
    ],
  });

  const limits = options.rateLimit;
  if (!limits) return;
  // Loaded only when configured: ioredis is a tenth of the API's start-up time.
  const redis = limits.redisUrl
    ? new (await import('ioredis')).Redis(limits.redisUrl, {
        maxRetriesPerRequest: 1,
        enableOfflineQueue: false,
        connectTimeout: 2_000,
      })
    : null;
  if (redis) {
    // A Redis outage must not take the API down: the limiter then lets requests through.
    redis.on('error', (error) => app.log.warn({ errName: error.name }, 'rate limit store unreachable'));
    app.addHook('onClose', async () => {
      await redis.quit().catch(() => redis.disconnect());
    });
  }
  await app.register(rateLimit, {
    global: true,
    // After routing, so the key can be the verified subject of the token (verified once per request).
    hook: 'preHandler',
    ...(redis ? { redis, nameSpace: 'taskflow-rl:' } : {}),
    skipOnError: true,
    timeWindow: limits.windowMs,
    keyGenerator: async (request) => {
      const claims = await verifyRequest(options.verifier, request);
      return claims instanceof Error ? `ip:${request.ip}` : `actor:${claims.sub}`;
    },
    max: async (_request, key) => (key.startsWith('actor:') ? limits.perActor : limits.perAnonymousIp),
    allowList: (request) => request.url === '/health' || request.url.startsWith('/docs'),
    errorResponseBuilder: (_request, context) => rateLimited(context.ttl),
  });
  countEveryCall(app);
}

/** Thrown to the app's error handler, which writes the API error body. */
function rateLimited(ttlMs: number): Error {
  return Object.assign(new Error(`Rate limit exceeded: retry in ${Math.ceil(ttlMs / 1000)} s`), {
    statusCode: 429,
  });
}

/**
 * A request that carries several calls (a tRPC batch) is counted once per call: the limiter's own
 * hook counts the first, this one the rest, against the same counter.
 */
function countEveryCall(app: FastifyInstance): void {
  const hit = app.createRateLimit();
  app.addHook('preHandler', async (request, reply) => {
    const calls = request.routeOptions.config.callCount?.(request) ?? 1;
    for (let call = 1; call < calls; call++) {
      const state = await hit(request);
      if (!state.isAllowed && state.isExceeded) {
        reply.header('retry-after', state.ttlInSeconds);
        throw rateLimited(state.ttl);
      }
    }
  });
}
