import type { IncomingMessage, ServerResponse } from 'node:http';
import { type AnyTRPCRouter, type inferRouterContext, TRPCError } from '@trpc/server';
import { incomingMessageToRequest } from '@trpc/server/adapters/node-http';
import { resolveResponse } from '@trpc/server/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { answerCalls, ordinaryCalls } from './json-calls.js';

/**
 * tRPC over Fastify, on tRPC's public API. tRPC's own plugin turns every call into a fetch
 * `Request` (copied headers, a URL object, a body stream) and pipes the `Response` back as a web
 * stream. Here the ordinary JSON calls that are nearly all of TaskFlow's traffic are run directly
 * (`json-calls.ts`) and answered as one string with a Content-Length; every other request goes
 * through tRPC's `resolveResponse` as in tRPC's plugin, streamed answers included.
 */
export interface TrpcAdapterOptions<TRouter extends AnyTRPCRouter> {
  router: TRouter;
  createContext: (request: FastifyRequest) => Promise<inferRouterContext<TRouter>>;
  onError?: (failure: { error: TRPCError; req: FastifyRequest }) => void;
  /** Calls one batch may hold; a larger batch is refused with 400 before any call runs. */
  maxBatchCalls: number;
  /** Bytes one JSON answer may have; each call of a larger one answers 400 instead. */
  maxAnswerBytes: number;
}

type TrpcRequest = FastifyRequest<{ Params: { path: string } }>;

/** Aborts when the client goes away before the answer is written, as tRPC's own conversion does. */
function clientGone(incoming: IncomingMessage, res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  const onAborted = () => {
    res.off('close', onClose);
    incoming.off('aborted', onAborted);
    controller.abort();
  };
  const onClose = () => {
    if (res.writableEnded) incoming.off('aborted', onAborted);
    else onAborted();
  };
  res.once('close', onClose);
  incoming.once('aborted', onAborted);
  return controller.signal;
}

function tooLarge(bytes: number, limit: number): TRPCError {
  return new TRPCError({
    code: 'BAD_REQUEST',
    message: `The answer would be ${bytes} bytes, over the ${limit}-byte limit: ask for fewer calls or smaller pages`,
  });
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** Anything but an ordinary JSON call: tRPC answers it exactly as its own fastify plugin would. */
async function viaResolveResponse<TRouter extends AnyTRPCRouter>(
  options: TrpcAdapterOptions<TRouter>,
  request: TrpcRequest,
  reply: FastifyReply,
): Promise<void> {
  const incoming = Object.assign(request.raw, { body: request.body });
  const response = await resolveResponse<TRouter>({
    router: options.router,
    req: incomingMessageToRequest(incoming, reply.raw, { maxBodySize: null }),
    path: request.params.path,
    error: null,
    maxBatchSize: options.maxBatchCalls,
    createContext: () => options.createContext(request),
    onError: ({ error }) => options.onError?.({ error, req: request }),
  });
  return reply.send(response);
}

async function handle<TRouter extends AnyTRPCRouter>(
  options: TrpcAdapterOptions<TRouter>,
  request: TrpcRequest,
  reply: FastifyReply,
): Promise<void> {
  const url = request.raw.url ?? '';
  const query = url.indexOf('?');
  const info = ordinaryCalls(
    options.router,
    {
      method: request.method,
      path: request.params.path,
      searchParams: new URLSearchParams(query < 0 ? '' : url.slice(query + 1)),
      contentType: header(request, 'content-type'),
      streaming:
        header(request, 'trpc-accept') !== undefined ||
        (header(request, 'accept')?.includes('application/jsonl') ?? false),
      body: request.body,
    },
    options.maxBatchCalls,
  );
  if (!info) return viaResolveResponse(options, request, reply);
  const answer = await answerCalls(info, {
    router: options.router,
    createContext: () => options.createContext(request),
    signal: clientGone(request.raw, reply.raw),
    onError: (error) => options.onError?.({ error, req: request }),
    maxAnswerBytes: options.maxAnswerBytes,
    tooLarge: (bytes) => tooLarge(bytes, options.maxAnswerBytes),
  });
  reply.code(answer.status).header('content-type', 'application/json').header('vary', 'trpc-accept, accept');
  return reply.send(answer.body);
}

/** The calls a request carries, for the rate limit: one per call of a batch tRPC will run. */
function callCount(request: FastifyRequest, maxBatchCalls: number): number {
  if ((request.query as Record<string, unknown>).batch !== '1') return 1;
  const calls = (request.params as { path: string }).path.split(',').length;
  return calls > maxBatchCalls ? 1 : calls;
}

/** Serves `router` at `<prefix>/:path`; register it with `{ prefix: '/trpc' }`. */
export function trpcPlugin<TRouter extends AnyTRPCRouter>(
  app: FastifyInstance,
  options: TrpcAdapterOptions<TRouter>,
  done: () => void,
): void {
  // tRPC parses the JSON itself (per call); multipart bodies are tRPC's to read.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, parsed) =>
    parsed(null, body),
  );
  app.removeContentTypeParser('multipart/form-data');
  app.addContentTypeParser('multipart/form-data', {}, (_request, body, parsed) => parsed(null, body));
  app.all<{ Params: { path: string } }>(
    '/:path',
    { config: { callCount: (request) => callCount(request, options.maxBatchCalls) } },
    (request, reply) => handle(options, request, reply),
  );
  done();
}
