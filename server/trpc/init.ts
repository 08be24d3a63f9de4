import { initTRPC, TRPCError } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import { ZodError } from 'zod';
import { toTRPCError } from '../errors.js';
import type { Context } from './context.js';

// The one initTRPC of the server.
const t = initTRPC
  .context<Context>()
  .meta<OpenApiMeta>()
  .create({
    errorFormatter({ shape, error, ctx }) {
      const issues = error.cause instanceof ZodError ? error.cause.issues : undefined;
      return {
        message: error.code === 'BAD_REQUEST' && issues ? 'Input validation failed' : shape.message,
        code: shape.code,
        // No stack, path or driver text leaves the server.
        data: {
          code: shape.data.code,
          httpStatus: shape.data.httpStatus,
          requestId: ctx?.requestId ?? null,
          ...(issues ? { issues } : {}),
        },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/** Maps whatever a procedure throws (domain, database) to the right code, in one place. */
const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok) throw toTRPCError(result.error);
  return result;
});

/**
 * Answers 503 when a procedure is still waiting at its deadline (pool exhausted, database hanging)
 * instead of letting requests queue until the connection is cut. A write that was still under way
 * may yet commit: callers that retry use an idempotency key.
 */
const deadline = t.middleware(async ({ ctx, next }) => {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The database did not answer in time' }),
        ),
      ctx.deadlineMs,
    );
  });
  try {
    return await Promise.race([next(), expired]);
  } finally {
    clearTimeout(timer);
  }
});

export const publicProcedure = t.procedure.use(mapErrors).use(deadline);

export const protectedProcedure = publicProcedure.use(({ ctx, path, next }) => {
  if (!ctx.actor)
    throw ctx.authError ?? new TRPCError({ code: 'UNAUTHORIZED', message: 'Missing bearer token' });
  return next({ ctx: { ...ctx, actor: ctx.actor, procedurePath: path } });
});
