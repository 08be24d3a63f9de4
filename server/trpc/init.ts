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

export const publicProcedure = t.procedure.use(mapErrors);

export const protectedProcedure = publicProcedure.use(({ ctx, path, next }) => {
  if (!ctx.actor)
    throw ctx.authError ?? new TRPCError({ code: 'UNAUTHORIZED', message: 'Missing bearer token' });
  return next({ ctx: { ...ctx, actor: ctx.actor, procedurePath: path } });
});
