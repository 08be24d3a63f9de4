import { type AnyTRPCProcedure, getTRPCErrorFromUnknown, TRPCError } from '@trpc/server';
import { getParseFn, isPromise, type Parser } from '@trpc/server/unstable-core-do-not-import';

/** What tRPC passes a procedure when it calls one (its `ProcedureCallOptions`). */
export interface CallOptions {
  path: string;
  type: 'query' | 'mutation' | 'subscription';
  ctx: unknown;
  getRawInput: () => Promise<unknown>;
  input?: unknown;
  signal: AbortSignal | undefined;
  batchIndex: number;
}

type Step = { ok: true; data: unknown } | { ok: false; error: TRPCError };

interface NextOptions {
  ctx?: object;
  input?: unknown;
  getRawInput?: () => Promise<unknown>;
}

type Middleware = (opts: object) => Promise<Step>;

// tRPC's `middlewareMarker`: its middleware results carry it; nothing reads it at run time.
const marker = 'middlewareMarker';

/**
 * tRPC's `callRecursive`, step for step, with the same options and the same error mapping. The
 * options are written out rather than spread: `CallOptions` is all a caller passes. It hands on
 * the middleware's promise instead of awaiting it: an async frame per level was about 1.7 KB of
 * garbage per call of `tasks.get`.
 */
function callFrom(
  middlewares: readonly Middleware[],
  meta: unknown,
  index: number,
  opts: CallOptions,
): Promise<Step> {
  const middleware = middlewares[index] as Middleware;
  let result: Promise<Step>;
  try {
    result = middleware({
      path: opts.path,
      type: opts.type,
      ctx: opts.ctx,
      getRawInput: opts.getRawInput,
      input: opts.input,
      signal: opts.signal,
      batchIndex: opts.batchIndex,
      meta,
      next: (next?: NextOptions) =>
        callFrom(middlewares, meta, index + 1, {
          path: opts.path,
          type: opts.type,
          ctx: next?.ctx ? { ...(opts.ctx as object), ...next.ctx } : opts.ctx,
          getRawInput: next?.getRawInput ?? opts.getRawInput,
          input: next && 'input' in next ? next.input : opts.input,
          signal: opts.signal,
          batchIndex: opts.batchIndex,
        }),
    });
  } catch (cause) {
    return Promise.resolve(failure(cause));
  }
  return Promise.resolve(result).then(undefined, failure);
}

const steps = new WeakMap<AnyTRPCProcedure, readonly Middleware[]>();

/**
 * The procedure's middlewares, with tRPC's output validator replaced by `outputStep`, which parses
 * the same way (tRPC's `getParseFn` of the procedure's `output`) and answers the same. tRPC's copies
 * the result twice through its down-levelled spread; that was another 1.5 KB per `tasks.get`.
 */
function stepsOf(procedure: AnyTRPCProcedure): readonly Middleware[] {
  let list = steps.get(procedure);
  if (!list) {
    const def = procedure._def as unknown as {
      middlewares: (Middleware & { _type?: string })[];
      output?: Parser;
    };
    // tRPC refuses a second `.output()`, so there is one output validator, parsing `def.output`.
    const parse = def.output ? getParseFn(def.output) : undefined;
    list = def.middlewares.map((m) => (parse && m._type === 'output' ? outputStep(parse) : m));
    steps.set(procedure, list);
  }
  return list;
}

function outputStep(parse: (value: unknown) => unknown): Middleware {
  return async (opts) => {
    const result = await (opts as { next: () => Promise<Step> }).next();
    if (!result.ok) return result;
    try {
      let data = parse(result.data);
      if (isPromise(data)) data = await data;
      return { ok: true, data, marker } as Step;
    } catch (cause) {
      throw new TRPCError({ message: 'Output validation failed', code: 'INTERNAL_SERVER_ERROR', cause });
    }
  };
}

function failure(cause: unknown): Step {
  return { ok: false, error: getTRPCErrorFromUnknown(cause), marker } as Step;
}

/**
 * Calls `procedure` as `procedure(opts)` does: its middlewares in order (input and output parsers
 * included), then its resolver, and returns the data or throws the error. tRPC's bundle compiles
 * every `{ ...opts }` of that chain to a helper that defines each property through
 * `Object.defineProperty`; four middleware levels copy the options seven times per call, which
 * was a fifth of the CPU of a batch of ten `tasks.get`. Here they are plain object literals.
 * A procedure with a caller override (tRPC's `experimental_caller`) is called as it is.
 */
export async function runProcedure(procedure: AnyTRPCProcedure, opts: CallOptions): Promise<unknown> {
  const def = procedure._def as { middlewares?: unknown; meta?: unknown; experimental_caller?: unknown };
  if (!Array.isArray(def.middlewares) || def.experimental_caller) return procedure(opts);
  const result = await callFrom(stepsOf(procedure), def.meta, 0, opts);
  if (!result) {
    throw new TRPCError({
      code: 'INTERNAL_SERVER_ERROR',
      message: 'No result from middlewares - did you forget to `return next()`?',
    });
  }
  if (!result.ok) throw result.error;
  return result.data;
}
