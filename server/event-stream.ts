import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorBody } from '../shared/errors.js';
import { EventStreamInput } from '../shared/schemas/event.js';
import { errorBody } from './error-body.js';
import { toTRPCError } from './errors.js';
import { toEvent } from './routers/dto.js';
import * as events from './services/events/index.js';
import { type ContextDeps, createContext } from './trpc/context.js';

export interface EventStreamOptions {
  /** A comment line this often keeps proxies from closing an idle stream. */
  pingMs: number;
  /** A client that has not taken what was written for this long is cut off, not buffered for. */
  stallMs: number;
}

// What the socket may hold unread before the stream waits for it (and, after `stallMs`, gives up).
const HIGH_WATER_BYTES = 256 * 1024;

function wantsStream(request: FastifyRequest): boolean {
  return (
    request.method === 'GET' &&
    request.url.split('?')[0] === '/api/events' &&
    (request.headers.accept ?? '').includes('text/event-stream')
  );
}

function refuse(reply: FastifyReply, request: FastifyRequest, error: unknown): FastifyReply {
  const trpcError = toTRPCError(error);
  const status = getHTTPStatusCodeFromError(trpcError);
  return sendError(reply, status, errorBody(status, trpcError.message, request.id, { code: trpcError.code }));
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
 */
export function registerEventStream(
  app: FastifyInstance,
  deps: ContextDeps,
  options: EventStreamOptions,
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
    const abort = new AbortController();
    let batches: AsyncGenerator<events.EventRow[]>;
    try {
      const actor = await ctx.resolveActor();
      batches = await events.follow(
        { tx: ctx.db, actor, requestId: ctx.requestId },
        ctx.events,
        input.data,
        abort.signal,
      );
    } catch (error) {
      return refuse(reply, request, error);
    }

    // The stream is written to the socket directly: fastify's reply is done with once the headers
    // it gathered (security, CORS, request id) are copied.
    reply.hijack();
    const res = reply.raw;
    const stop = () => abort.abort();
    res.on('close', stop);
    // The body ends with the connection (it is closed after the stream), so it needs no chunked
    // framing: each event is one plain write to the socket, not a chunk header, the event and a CRLF.
    res.removeHeader('transfer-encoding');
    res.writeHead(200, {
      ...(reply.getHeaders() as OutgoingHttpHeaders),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      'x-accel-buffering': 'no',
      // A stream is not worth keeping its connection for: when it ends (shutdown) the socket closes
      // too, instead of idling until the keep-alive timeout holds the shutdown up.
      connection: 'close',
    });
    const ping = setInterval(() => res.write(': ping\n\n'), options.pingMs);
    void pump(batches, res, options.stallMs, abort.signal, request.log, () => res.destroy()).finally(() => {
      clearInterval(ping);
      res.off('close', stop);
      res.end();
    });
    res.write('retry: 1000\n\n');
    return reply;
  });
}

// A row the shared feed hands out is the same object in every stream that may see it: each is
// serialised once, not once per stream.
const frames = new WeakMap<events.EventRow, Buffer>();

function frameOf(row: events.EventRow): Buffer {
  let frame = frames.get(row);
  if (!frame) {
    const event = toEvent(row);
    frame = Buffer.from(`id: ${event.id}\nevent: ${event.action}\ndata: ${JSON.stringify(event)}\n\n`);
    frames.set(row, frame);
  }
  return frame;
}

async function pump(
  batches: AsyncGenerator<events.EventRow[]>,
  out: ServerResponse,
  stallMs: number,
  signal: AbortSignal,
  log: FastifyBaseLogger,
  cut: () => void,
): Promise<void> {
  try {
    for await (const rows of batches) {
      // Written to the response itself, what arrived together in one write: a socket write costs
      // the same for one event as for several, and it is most of what a stream costs.
      out.write(rows.length === 1 ? frameOf(rows[0] as events.EventRow) : Buffer.concat(rows.map(frameOf)));
      if (out.writableLength > HIGH_WATER_BYTES && !(await drained(out, stallMs, signal))) {
        if (!signal.aborted) log.info({ stallMs }, 'event stream cut: the client stopped reading');
        cut();
        return;
      }
    }
  } catch (error) {
    // Shutdown is a normal end; anything else (the database gone) ends the stream too, and the
    // client resumes from its last id.
    if (!(error instanceof events.StreamClosedError)) {
      log.warn({ errName: (error as Error).name }, 'event stream ended by an error');
    }
  } finally {
    await batches.return(undefined);
  }
}

/** True once `out` can take more, false when it has not within `ms` (or the stream ended). */
function drained(out: ServerResponse, ms: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      out.off('drain', onDrain);
      signal.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onDrain = () => done(true);
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(false), ms);
    out.once('drain', onDrain);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
