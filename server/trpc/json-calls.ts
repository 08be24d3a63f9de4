import {
  type AnyTRPCProcedure,
  type AnyTRPCRouter,
  getErrorShape,
  getTRPCErrorFromUnknown,
  type inferRouterContext,
  type TRPCError,
} from '@trpc/server';
import { getHTTPStatusCode } from '@trpc/server/http';
import { runProcedure } from './run-procedure.js';

/**
 * The ordinary tRPC request, answered without tRPC's `resolveResponse`: a GET of queries or a
 * POST of mutations, JSON in and one JSON answer out, every path a procedure the method allows.
 * `resolveResponse` takes a fetch `Request` and returns a fetch `Response`, and wraps each call's
 * signal in `AbortSignal.any` (weak references the GC must trace); on a batch of ten gets that
 * doubled the CPU time of the request. Every other request (a path that names no procedure, a
 * wrong method, input that does not parse, streaming, multipart) is left to `resolveResponse`,
 * which also writes all its errors, so both answer alike (test/contract/trpc-adapter.test.ts).
 * A procedure that returns a stream is for `httpBatchStreamLink`, whose requests go the other way.
 */
export interface JsonCalls {
  isBatch: boolean;
  type: 'query' | 'mutation';
  calls: { path: string; procedure: AnyTRPCProcedure; input: unknown }[];
}

export interface JsonRequest {
  method: string;
  /** The path after the prefix, as it came (percent-encoded, comma-separated for a batch). */
  path: string;
  searchParams: URLSearchParams;
  contentType: string | undefined;
  /** Whether the client asks for a streamed answer (`trpc-accept`, or `accept: application/jsonl`). */
  streaming: boolean;
  body: unknown;
}

const METHOD_OF_TYPE = { query: 'GET', mutation: 'POST' } as const;

function isJson(contentType: string | undefined): boolean {
  return contentType?.split(';', 1)[0]?.trim().toLowerCase() === 'application/json';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function decoded(path: string): string | null {
  try {
    return decodeURIComponent(path);
  } catch {
    return null;
  }
}

function parsedJson(text: string): { value: unknown } | null {
  try {
    return { value: JSON.parse(text) };
  } catch {
    return null;
  }
}

/** The calls of `request` when it is an ordinary one, else null (then `resolveResponse` answers). */
export function ordinaryCalls(
  router: AnyTRPCRouter,
  request: JsonRequest,
  maxBatchCalls: number,
): JsonCalls | null {
  const config = router._def._config;
  if (request.streaming || config.pathSeparator !== '.') return null;
  if (request.method === 'POST' ? !isJson(request.contentType) : request.method !== 'GET') return null;
  if (request.method === 'GET' && request.contentType !== undefined && !isJson(request.contentType)) {
    return null;
  }
  const path = decoded(request.path);
  if (path === null) return null;
  const isBatch = request.searchParams.get('batch') === '1';
  const paths = isBatch ? path.split(',') : [path];
  if (paths.length > maxBatchCalls) return null;

  const known = router._def.procedures as Record<string, AnyTRPCProcedure>;
  const procedures: AnyTRPCProcedure[] = [];
  for (const name of paths) {
    const procedure = Object.hasOwn(known, name) ? known[name] : undefined;
    if (!procedure) return null;
    procedures.push(procedure);
  }
  const type = procedures[0]?._def.type;
  if (type !== 'query' && type !== 'mutation') return null;
  if (METHOD_OF_TYPE[type] !== request.method || procedures.some((p) => p._def.type !== type)) return null;

  const text = request.method === 'GET' ? request.searchParams.get('input') : request.body;
  if (typeof text !== 'string' && text !== null) return null;
  const json = text ? parsedJson(text) : { value: undefined };
  if (!json) return null;
  if (isBatch && json.value !== undefined && !isRecord(json.value)) return null;
  const deserialize = (value: unknown) =>
    value === undefined ? undefined : config.transformer.input.deserialize(value);
  const inputOf = (index: number) =>
    isBatch
      ? deserialize((json.value as Record<string, unknown> | undefined)?.[index])
      : deserialize(json.value);
  return {
    isBatch,
    type,
    calls: paths.map((name, index) => ({
      path: name,
      procedure: procedures[index] as AnyTRPCProcedure,
      input: inputOf(index),
    })),
  };
}

export interface JsonAnswer {
  status: number;
  body: string;
}

export interface AnswerOptions<TRouter extends AnyTRPCRouter> {
  router: TRouter;
  createContext: () => Promise<inferRouterContext<TRouter>>;
  signal: AbortSignal;
  /** Told of every failed call, as tRPC's `onError` is. */
  onError: (error: TRPCError) => void;
  /** An answer longer than this is replaced by `tooLarge(bytes)` for every call. */
  maxAnswerBytes: number;
  tooLarge: (bytes: number) => TRPCError;
}

/** Runs the calls as `resolveResponse` would and writes their answer: status, JSON body. */
export async function answerCalls<TRouter extends AnyTRPCRouter>(
  info: JsonCalls,
  options: AnswerOptions<TRouter>,
): Promise<JsonAnswer> {
  const config = options.router._def._config;
  let ctx: inferRouterContext<TRouter> | undefined;
  let ctxError: TRPCError | undefined;
  try {
    ctx = await options.createContext();
  } catch (cause) {
    ctxError = getTRPCErrorFromUnknown(cause);
  }
  const failed = (call: JsonCalls['calls'][number], error: TRPCError) => {
    options.onError(error);
    const shape = getErrorShape({ config, error, type: info.type, path: call.path, input: call.input, ctx });
    return { error: shape };
  };
  const settled = await Promise.all(
    info.calls.map(async (call, batchIndex) => {
      try {
        if (ctxError) throw ctxError;
        const data = await runProcedure(call.procedure, {
          path: call.path,
          getRawInput: async () => call.input,
          ctx,
          type: info.type,
          signal: options.signal,
          batchIndex,
        });
        return { item: { result: { data } }, error: undefined };
      } catch (cause) {
        const error = getTRPCErrorFromUnknown(cause);
        return { item: failed(call, error), error };
      }
    }),
  );
  // tRPC's `transformTRPCResponse`, without its two down-levelled spreads per answer (`defineProperty`
  // per key): on a batch of ten gets they were 3 % of the request's CPU. `serialize` is called on
  // its transformer, as tRPC does: a transformer's methods may use `this`.
  const { output } = config.transformer;
  const write = (items: typeof settled) => {
    const json = items.map(({ item }) => item);
    const wire = json.map((item) =>
      'error' in item
        ? { error: output.serialize(item.error) }
        : { result: { data: output.serialize(item.result.data) } },
    );
    const body = JSON.stringify(info.isBatch ? wire : wire[0]);
    return {
      status: getHTTPStatusCode(
        json,
        items.map(({ error }) => error),
      ),
      body,
    };
  };
  const answer = write(settled);
  // A UTF-16 unit is at most 3 bytes of UTF-8, so most answers need no byte count.
  if (answer.body.length * 3 <= options.maxAnswerBytes) return answer;
  const bytes = Buffer.byteLength(answer.body);
  if (bytes <= options.maxAnswerBytes) return answer;
  const error = options.tooLarge(bytes);
  return write(info.calls.map((call) => ({ item: failed(call, error), error })));
}
