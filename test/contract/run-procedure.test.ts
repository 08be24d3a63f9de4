import { type AnyTRPCProcedure, initTRPC, TRPCError } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type CallOptions, runProcedure } from '../../server/trpc/run-procedure.js';

// runProcedure must be indistinguishable from tRPC calling the procedure itself: the same data,
// the same errors, the same options seen by every middleware and the resolver.

const t = initTRPC.context<{ user: string | null; seen: string[] }>().meta<{ tag: string }>().create();

const authed = t.procedure.use(({ ctx, next }) => {
  if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'who are you' });
  return next({ ctx: { user: ctx.user, role: 'member' as const } });
});

const router = t.router({
  echo: authed
    .meta({ tag: 'echo' })
    .input(z.object({ n: z.number().int() }))
    .use(({ input, meta, path, type, batchIndex, next }) => {
      return next({ input: { n: input.n * 2, note: `${meta?.tag}:${path}:${type}:${batchIndex}` } });
    })
    .output(z.object({ n: z.number(), note: z.string(), user: z.string(), role: z.string() }))
    .query(({ input, ctx }) => ({
      ...(input as { n: number; note: string }),
      user: ctx.user,
      role: ctx.role,
    })),
  badOutput: authed.output(z.object({ n: z.number() })).query(() => ({ n: 'not a number' }) as never),
  throwsPlain: authed.mutation(() => {
    throw new Error('boom');
  }),
  noNext: t.procedure.use((async () => undefined) as never).query(() => 1),
  rawInput: t.procedure
    .use(async ({ getRawInput, next }) =>
      next({ getRawInput: async () => ({ wrapped: await getRawInput() }) }),
    )
    .input(z.object({ wrapped: z.unknown() }))
    .query(({ input }) => input),
  // Output parsing: unknown keys stripped; an async refinement (tRPC then parses asynchronously).
  strips: t.procedure.output(z.object({ n: z.number() })).query(() => ({ n: 1, secret: 'x' }) as never),
  asyncOutput: t.procedure
    .input(z.number())
    .output(z.number().refine(async (n) => n > 0, 'not positive'))
    .query(({ input }) => input),
});

const procedures: Record<string, AnyTRPCProcedure> = {
  ...(router._def.procedures as Record<string, AnyTRPCProcedure>),
  // Not a router's procedure by its types (it is a server action's function), by its run time it is.
  withCaller: t.procedure
    .experimental_caller(async ({ invoke, args }) => invoke(args[0] as never))
    .query(() => 'called') as unknown as AnyTRPCProcedure,
};

function options(path: string, input: unknown, user: string | null = 'ann'): CallOptions {
  return {
    path,
    type: procedures[path]?._def.type ?? 'query',
    ctx: { user, seen: [] },
    getRawInput: async () => input,
    signal: undefined,
    batchIndex: 3,
  };
}

async function settle(run: () => Promise<unknown>) {
  try {
    return { data: await run() };
  } catch (error) {
    const e = error as TRPCError;
    return { name: e.name, code: e.code, message: e.message, cause: (e.cause as Error | undefined)?.message };
  }
}

async function both(path: string, input: unknown, user?: string | null) {
  const procedure = procedures[path] as AnyTRPCProcedure;
  const ours = await settle(() => runProcedure(procedure, options(path, input, user)));
  const theirs = await settle(() => procedure(options(path, input, user)));
  return { ours, theirs };
}

describe('runProcedure', () => {
  it('passes ctx, input, meta, path, type and batchIndex through every middleware as tRPC does', async () => {
    const { ours, theirs } = await both('echo', { n: 21 });
    expect(ours).toEqual({ data: { n: 42, note: 'echo:echo:query:3', user: 'ann', role: 'member' } });
    expect(theirs).toEqual(ours);
  });

  it('maps what middlewares, parsers and resolvers throw to the same TRPCError', async () => {
    for (const [path, input, user] of [
      ['echo', { n: 1.5 }, 'ann'],
      ['echo', { n: 1 }, null],
      ['badOutput', undefined, 'ann'],
      ['throwsPlain', undefined, 'ann'],
      ['noNext', undefined, 'ann'],
    ] as const) {
      const { ours, theirs } = await both(path, input, user);
      expect(ours, path).toHaveProperty('code');
      expect(ours, path).toEqual(theirs);
    }
  });

  it('parses the output as tRPC does, stripping unknown keys, synchronously or not', async () => {
    for (const [path, input, data] of [
      ['strips', undefined, { n: 1 }],
      ['asyncOutput', 3, 3],
    ] as const) {
      const { ours, theirs } = await both(path, input);
      expect(ours, path).toEqual({ data });
      expect(theirs, path).toEqual(ours);
    }
    const failed = await both('asyncOutput', -1);
    expect(failed.ours).toMatchObject({ code: 'INTERNAL_SERVER_ERROR', message: 'Output validation failed' });
    expect(failed.theirs).toEqual(failed.ours);
  });

  it('lets a middleware replace the raw input', async () => {
    const { ours, theirs } = await both('rawInput', 7);
    expect(ours).toEqual({ data: { wrapped: 7 } });
    expect(theirs).toEqual(ours);
  });

  it('calls a procedure with a caller override through it', async () => {
    const { ours, theirs } = await both('withCaller', undefined);
    expect(ours).toEqual({ data: 'called' });
    expect(theirs).toEqual(ours);
  });
});
