import { initTRPC, TRPCError } from '@trpc/server';
import { ZodError } from 'zod';
import { reasonOf, toTRPCError } from '../errors.js';
import type { Meta } from '../routers/openapi-meta.js';
import type { Context } from './context.js';

// The one initTRPC of the server.
const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    // Subscriptions (SSE): a ping keeps idle streams open through proxies; a client that hears
    // nothing for longer reconnects and resumes from its last event id.
    sse: { ping: { enabled: true, intervalMs: 15_000 }, client: { reconnectAfterInactivityMs: 20_000 } },
    errorFormatter({ shape, error, ctx }) {
      const issues = error.cause instanceof ZodError ? error.cause.issues : undefined;
      const reason = reasonOf(error);
      return {
        message: error.code === 'BAD_REQUEST' && issues ? 'Input validation failed' : shape.message,
        code: shape.code,
        // No stack, path or driver text leaves the server.
        data: {
          code: shape.data.code,
          httpStatus: shape.data.httpStatus,
          requestId: ctx?.requestId ?? null,
          ...(reason ? { reason } : {}),
          ...(issues ? { issues } : {}),
        },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/**
 * Runs the rest of a procedure under its deadline and maps whatever it throws (domain, database) to
 * the right code, in one place. A procedure still waiting at its deadline (pool exhausted, database
 * hanging) answers 503 instead of letting requests queue until the client gives up; a write that
 * was still under way may yet commit, so callers that retry use an idempotency key. One promise
 * settled by whichever comes first, rather than `Promise.race` in an async function: a kilobyte less
 * garbage per call.
 */
function guarded<R extends { ok: boolean; error?: unknown }>(
  deadlineMs: number,
  next: () => Promise<R>,
): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'The database did not answer in time' }),
        ),
      deadlineMs,
    );
    next().then(
      (result) => {
        clearTimeout(timer);
        if (result.ok) resolve(result);
        else reject(toTRPCError(result.error));
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(toTRPCError(error));
      },
    );
  });
}

// One middleware per procedure, not a chain: each tRPC middleware level copies the context, a
// measurable share of a small request.
export const publicProcedure = t.procedure.use(({ ctx, next }) => guarded(ctx.deadlineMs, () => next()));

/**
 * A procedure that needs a verified actor; its context also says which procedure it is. The actor
 * is resolved under the deadline too: the first request of a new worker registers it.
 */
export const protectedProcedure = t.procedure.use(({ ctx, path, next }) =>
  guarded(ctx.deadlineMs, async () =>
    next({ ctx: { actor: await ctx.resolveActor(), procedurePath: path } }),
  ),
);
