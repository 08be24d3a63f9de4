import { randomUUID } from 'node:crypto';
import swagger, { type StaticDocumentSpec } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifyServerOptions,
  LogController,
} from 'fastify';
import pino from 'pino';
import type { Database, DatabaseOptions } from '../db/client.js';
import { MAX_BATCH_CALLS } from '../shared/limits.js';
import type { TokenVerifier } from './auth/verifier.js';
import {
  type Config,
  DEFAULT_AGENT_LEASE_SECONDS,
  DEFAULT_MAX_ANSWER_BYTES,
  DEFAULT_MAX_CONNECTIONS,
  DEFAULT_WEBHOOK_TIMEOUT_MS,
  procedureDeadlineMs,
} from './config.js';
import { errorBody } from './error-body.js';
import { registerEventStream } from './event-stream.js';
import { logServerError } from './log-errors.js';
import { mcpPlugin } from './mcp.js';
import { buildOpenApiDocument } from './openapi.js';
import { restPlugin } from './rest.js';
import { appRouter } from './routers/index.js';
import { registerSecurity } from './security.js';
import { EventFeed, type EventFeedOptions } from './services/events/index.js';
import * as idempotency from './services/idempotency-service.js';
import { sweepExpiredLeases } from './services/tasks/leases.js';
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  GIVE_UP_AFTER_MS,
  notifySenders,
  type Resolve,
  systemResolve,
  WebhookWorker,
  type WebhookWorkerOptions,
} from './services/webhooks/index.js';
import { WorkerRegistry } from './services/worker-service.js';
import { closeConnectionsOnShutdown } from './shutdown.js';
import { StreamProcess } from './streams/stream-process.js';
import type { StreamTimings } from './streams/writer.js';
import { createContext } from './trpc/context.js';
import { trpcPlugin } from './trpc/fastify-adapter.js';
import { VERSION } from './version.js';

export interface AppOptions {
  config: Pick<Config, 'allowedOrigins' | 'bodyLimitBytes' | 'requestTimeoutMs' | 'logLevel'> &
    Partial<
      Pick<Config, 'rateLimit' | 'maxAnswerBytes' | 'agentLeaseSeconds' | 'maxConnections' | 'webhooks'>
    >;
  database: Database;
  verifier: TokenVerifier;
  /** A logger config or instance; defaults to JSON logs at `config.logLevel`. */
  logger?: FastifyServerOptions['logger'] | FastifyServerOptions['loggerInstance'];
  /** Event stream timings and caps (defaults: poll 1 s, ping 15 s, stall 30 s, 20 streams per caller). */
  events?: Omit<EventFeedOptions, 'log'> & Partial<StreamTimings>;
  /**
   * REST event streams are written by a process of their own, with its own pool on this PostgreSQL
   * database (EVENT_STREAMS=process); without it, by the API process.
   */
  streamProcess?: { database: Extract<DatabaseOptions, { kind: 'postgres' }> };
  /** Webhook delivery tuning, and the resolver its address checks use (tests inject their own). */
  webhooks?: Partial<Pick<WebhookWorkerOptions, 'pollMs' | 'maxInFlight' | 'perEndpoint'>> & {
    resolve?: Resolve;
  };
}

const LEASE_SWEEP_MS = 1_000;

/** The API counts as quiet (its webhook senders may take more) once no request came for this long. */
const API_QUIET_AFTER_MS = 250;

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,100}$/;

/**
 * One log line per request, written when it is answered, instead of fastify's two: request logging
 * is a measurable share of a small request's cost. It holds flat fields (no serializers, no headers,
 * nothing to redact): method, the URL as it came in (the REST adapter rewrites `request.raw.url`),
 * status, time and the verified actor. Error lines are fastify's own.
 */
class OneLinePerRequest extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
  ): void {
    if (error) {
      super.requestCompleted(error, request, reply);
      return;
    }
    request.log.info(
      {
        method: request.method,
        url: request.originalUrl,
        statusCode: reply.statusCode,
        responseTime: reply.elapsedTime,
        actorId: request.actorId ?? undefined,
      },
      'request completed',
    );
  }
}

/** Builds the whole HTTP surface; listening is the caller's business. */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { config, database, verifier } = options;
  const app = Fastify({
    logger: options.logger ?? {
      level: config.logLevel,
      redact: { paths: ['req.headers.authorization', 'req.headers.cookie'], censor: '[redacted]' },
      // Written off the request path, batching what piles up under load; pino flushes it on exit.
      stream: pino.destination({ dest: 1, sync: false }),
    },
    logController: new OneLinePerRequest(),
    bodyLimit: config.bodyLimitBytes,
    requestTimeout: config.requestTimeoutMs,
    http: {
      // The request timeout covers the body too, but Node checks it only every
      // connectionsCheckingInterval (30 s by default): a body trickled in a byte at a time held its
      // connection for minutes. Checked every tenth of the timeout (at most every second) instead.
      requestTimeout: config.requestTimeoutMs,
      headersTimeout: Math.min(config.requestTimeoutMs, 10_000),
      connectionsCheckingInterval: Math.min(1_000, Math.ceil(config.requestTimeoutMs / 10)),
    },
    // A caller's own request id is kept when it is sane, so logs can be joined across services.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    routerOptions: { maxParamLength: 5000 },
    // Errors fastify answers before routing (a malformed %-escape in the URL) get the API error body too.
    frameworkErrors: (error, request, rawReply) => {
      const status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 400;
      const reply = rawReply as FastifyReply;
      return reply
        .header('x-request-id', request.id)
        .status(status)
        .send(errorBody(status, error.message, request.id));
    },
  });

  // Each open connection costs a file descriptor and memory: beyond the cap, new ones are closed.
  app.server.maxConnections = config.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  closeConnectionsOnShutdown(app, config.requestTimeoutMs);

  app.decorateRequest('actorId', null);
  const { pingMs = 15_000, stallMs = 30_000, ...feedOptions } = options.events ?? {};
  const events = new EventFeed(database, { ...feedOptions, log: app.log });
  // Before the server stops accepting: open streams end now, so their clients reconnect elsewhere
  // instead of holding the shutdown until they time out.
  app.addHook('preClose', async () => events.close());
  const streamProcess = options.streamProcess
    ? new StreamProcess(
        {
          database: options.streamProcess.database,
          events: feedOptions,
          timings: { pingMs, stallMs },
          maxStreams: config.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
        },
        app.log,
      )
    : null;
  app.addHook('preClose', async () => streamProcess?.close());
  const webhookConfig = config.webhooks ?? {
    allowPrivate: false,
    requireHttps: false,
    retryScheduleMs: DEFAULT_RETRY_SCHEDULE_MS,
    timeoutMs: DEFAULT_WEBHOOK_TIMEOUT_MS,
    senders: true,
  };
  const { resolve, ...webhookTuning } = options.webhooks ?? {};
  const urls = {
    allowPrivate: webhookConfig.allowPrivate,
    requireHttps: webhookConfig.requireHttps,
    resolve: resolve ?? systemResolve,
  };
  // When the API last took a request: its webhook senders hold back while it serves (SENDING_LIMITS).
  let lastRequestAt = Number.NEGATIVE_INFINITY;
  const webhooks = webhookConfig.senders
    ? new WebhookWorker(database, {
        apiBusy: () => performance.now() - lastRequestAt < API_QUIET_AFTER_MS,
        ...webhookTuning,
        urls,
        timeoutMs: webhookConfig.timeoutMs,
        policy: { scheduleMs: webhookConfig.retryScheduleMs, giveUpAfterMs: GIVE_UP_AFTER_MS },
        log: app.log,
      })
    : null;
  if (webhooks) {
    webhooks.start();
    // Attempts in flight are cut off and handed back: a shutdown never waits for a receiver.
    app.addHook('onClose', async () => webhooks.close());
  } else {
    app.log.info(
      'webhook senders are off here (WEBHOOK_SENDERS=false): other instances on the database send',
    );
  }
  // Without senders here, a new delivery wakes those of the other instances (they poll too).
  const wake = webhooks
    ? () => webhooks.wake()
    : () =>
        void notifySenders(database.db).catch((error: Error) => {
          app.log.warn({ errName: error.name }, 'webhook delivery: waking the other instances failed');
        });
  const deps = {
    database,
    verifier,
    registry: new WorkerRegistry(),
    events,
    deadlineMs: procedureDeadlineMs(config.requestTimeoutMs),
    agentLeaseSeconds: config.agentLeaseSeconds ?? DEFAULT_AGENT_LEASE_SECONDS,
    webhooks: { urls, wake },
  };

  // Idempotency keys older than 24 h are never replayed; drop them now and then so the table stays small.
  const purge = setInterval(() => {
    idempotency.purgeExpired(database.db).catch((error: Error) => {
      app.log.warn({ errName: error.name }, 'idempotency key purge failed');
    });
  }, 60 * 60_000);
  purge.unref();
  app.addHook('onClose', async () => clearInterval(purge));

  // Every instance sweeps lapsed leases each second, so lists show the truth within seconds; the
  // sweep skips rows another instance holds, so instances never wait on or double-audit each other.
  let sweeping = false;
  const sweep = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    sweepExpiredLeases(database.db)
      .catch((error: Error) => app.log.warn({ errName: error.name }, 'lease sweep failed'))
      .finally(() => {
        sweeping = false;
      });
  }, LEASE_SWEEP_MS);
  sweep.unref();
  app.addHook('onClose', async () => clearInterval(sweep));

  app.addHook('onRequest', async (request, reply) => {
    lastRequestAt = performance.now();
    reply.header('x-request-id', request.id);
    // Reading it once keeps it: the REST adapter later rewrites the raw URL (see OneLinePerRequest).
    void request.originalUrl;
  });
  app.addHook('onSend', async (_request, reply, payload) => {
    // A streamed tRPC answer is a fetch Response, whose status fastify applies only after this hook.
    const status = payload instanceof Response ? payload.status : reply.statusCode;
    if (status === 401) reply.header('www-authenticate', 'Bearer');
    // A subscription's socket closes with its stream (as the REST stream's does), so a shutdown
    // that ends streams does not then wait out the keep-alive timeout on their connections.
    if (payload instanceof Response && payload.headers.get('content-type')?.startsWith('text/event-stream')) {
      reply.header('connection', 'close');
    }
    return payload;
  });

  app.setErrorHandler(
    (error: { statusCode?: number; message?: string; validation?: unknown }, request, reply) => {
      const status =
        error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
      if (status >= 500) request.log.error({ errName: (error as Error).name }, 'request failed');
      return reply.status(status).send(errorBody(status, error.message ?? 'Request failed', request.id));
    },
  );
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send(errorBody(404, `No route ${request.method} ${request.url.split('?')[0]}`, request.id)),
  );

  await registerSecurity(app, {
    allowedOrigins: config.allowedOrigins,
    rateLimit: config.rateLimit ?? null,
    verifier,
  });

  await app.register(trpcPlugin, {
    prefix: '/trpc',
    router: appRouter,
    createContext: (request: FastifyRequest) => createContext(deps, request),
    onError: logServerError,
    maxBatchCalls: MAX_BATCH_CALLS,
    maxAnswerBytes: config.maxAnswerBytes ?? DEFAULT_MAX_ANSWER_BYTES,
  });

  registerEventStream(app, deps, { pingMs, stallMs }, streamProcess);
  await app.register(restPlugin, { router: appRouter, deps });
  await app.register(mcpPlugin, { deps, allowedOrigins: config.allowedOrigins });

  const document = buildOpenApiDocument(appRouter);
  app.get('/openapi.json', { schema: { hide: true } }, async () => document);
  await app.register(swagger, {
    mode: 'static', // Two typings of the same OpenAPI 3.1 object (openapi3-ts vs openapi-types) disagree on server enums.
    specification: { document: document as unknown as StaticDocumentSpec['document'] },
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { persistAuthorization: true, deepLinking: true, displayRequestDuration: true },
  });

  app.get('/health', { schema: { hide: true } }, async () => ({ status: 'ok', version: VERSION }));

  return app;
}
