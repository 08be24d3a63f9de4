import type { OutgoingHttpHeaders } from 'node:http';
import { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorBody } from '../shared/errors.js';
import { EventStreamInput } from '../shared/schemas/event.js';
import type { Actor } from './auth/actor.js';
import { errorBody } from './error-body.js';
import * as events from './services/events/index.js';
import { refusalOf } from './streams/answers.js';
import type { StreamProcess } from './streams/stream-process.js';
import { STREAM_HEADERS, type StreamTimings, writeEvents } from './streams/writer.js';
import { type ContextDeps, createContext } from './trpc/context.js';

function wantsStream(request: FastifyRequest): boolean {
  return (
    request.method === 'GET' &&
    request.url.split('?')[0] === '/api/events' &&
    (request.headers.accept ?? '').includes('text/event-stream')
  );
}

function refuse(reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply {
  const { status, body } = refusalOf(error, request.id);
  return sendError(reply, status, body);
}

// Serialised here: the REST route this hook runs on has no serializer for an object body.
function sendError(reply: FastifyReply, status: number, body: ErrorBody): FastifyReply {
  return reply.status(status).type('application/json; charset=utf-8').send(JSON.stringify(body));
}

/**
 * `GET /api/events` with `Accept: text/event-stream`: the caller's events as Server-Sent Events
 * (`id:` the event id, `event:` its action, `data:` its JSON), from after `Last-Event-ID` or
 * `?after=`, or from the present. Without that Accept header the request goes on to the REST mirror,
 * which answers one JSON page. Runs after the rate limiter, before the REST route's handler.
 *
 * With a stream process (PostgreSQL), the checked request and its connection are handed to it, so
 * the streams' writes never queue behind the API's requests nor these behind them; otherwise (PGlite,
 * or a request with no real connection, as `inject` makes) the stream is written here.
 */
export function registerEventStream(
  app: FastifyInstance,
  deps: ContextDeps,
  timings: StreamTimings,
  streamProcess: StreamProcess | null,
): void {
  app.addHook('preHandler', async (request, reply) => {
    if (!wantsStream(request)) return;
    const query = request.query as Record<string, unknown>;
    const lastEventId = request.headers['last-event-id'] ?? query.after;
    const input = EventStreamInput.safeParse({
      project: query.project,
      taskId: query.taskId,
      ...(lastEventId === undefined ? {} : { lastEventId }),
    });
    if (!input.success) {
      return sendError(
        reply,
        400,
        errorBody(400, 'Input validation failed', request.id, { issues: input.error.issues }),
      );
    }
    const ctx = await createContext(deps, request);
    let actor: Actor;
    try {
      actor = await ctx.resolveActor();
    } catch (error) {
      return refuse(reply, request, error);
    }
    const socket = request.raw.socket;
    if (streamProcess && socket instanceof Socket) {
      // The stream process answers on this connection from here on: fastify is done with it.
      reply.hijack();
      streamProcess.handOver(
        {
          actor,
          input: input.data,
          requestId: request.id,
          headers: reply.getHeaders() as OutgoingHttpHeaders,
        },
        socket,
      );
      return reply;
    }

    const abort = new AbortController();
    let batches: AsyncGenerator<events.EventRow[]>;
    try {
      batches = await events.follow(
        { tx: ctx.db, actor, requestId: ctx.requestId },
        ctx.events,
        input.data,
        abort.signal,
      );
    } catch (error) {
      return refuse(reply, request, error);
    }

    // The stream is written to the response directly: fastify's reply is done with once the headers
    // it gathered (security, CORS, request id) are copied.
    reply.hijack();
    const res = reply.raw;
    const stop = () => abort.abort();
    res.on('close', stop);
    res.removeHeader('transfer-encoding');
    res.writeHead(200, { ...(reply.getHeaders() as OutgoingHttpHeaders), ...STREAM_HEADERS });
    void writeEvents(batches, res, timings, abort.signal, request.log).finally(() => res.off('close', stop));
    return reply;
  });
}
