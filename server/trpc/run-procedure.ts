import { type AnyTRPCProcedure, getTRPCErrorFromUnknown, TRPCError } from '@trpc/server';

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
 * options are written out rather than spread: `CallOptions` is all a caller passes.
 */
async function callFrom(
  middlewares: readonly Middleware[],
  meta: unknown,
  index: number,
  opts: CallOptions,
): Promise<Step> {
  try {
    const middleware = middlewares[index] as Middleware;
    return await middleware({
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
    return { ok: false, error: getTRPCErrorFromUnknown(cause), marker } as Step;
  }
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
  const result = await callFrom(def.middlewares as Middleware[], def.meta, 0, opts);
  if (!result) {
    throw new TRPCError({
      code: 'INTERNAL_SERVER_ERROR',
      message: 'No result from middlewares - did you forget to `return next()`?',
    });
  }
  if (!result.ok) throw result.error;
  return result.data;
}
