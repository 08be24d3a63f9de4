import { TRPCError } from '@trpc/server';
import { NoInput } from '../../shared/schemas/common.js';
import { DbHealth } from '../../shared/schemas/health.js';
import { publicProcedure, router } from '../trpc/init.js';

export const healthRouter = router({
  db: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/health/db',
        tags: ['health'],
        summary: 'Database readiness',
        description: 'Public. 200 when the database answers within 2.5 s, 503 otherwise.',
        protect: false,
        errorResponses: { 503: 'Database unreachable' },
      },
    })
    .input(NoInput)
    .output(DbHealth)
    .query(async ({ ctx }) => {
      const started = performance.now();
      try {
        await ctx.database.ping();
      } catch (error) {
        throw new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: 'Database unreachable', cause: error });
      }
      return {
        status: 'ok' as const,
        database: ctx.database.kind,
        latencyMs: Math.round((performance.now() - started) * 100) / 100,
      };
    }),
});
