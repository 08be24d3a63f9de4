import type { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyBaseLogger } from 'fastify';

/** 5xx are logged by kind and SQLSTATE only: driver messages can carry SQL and values. */
export function logServerError({
  error,
  req,
}: {
  error: TRPCError;
  req: { log: FastifyBaseLogger; actorId?: string | null };
}): void {
  if (getHTTPStatusCodeFromError(error) < 500) return;
  const cause = error.cause as { name?: string; code?: unknown; cause?: { code?: unknown } } | undefined;
  req.log.error(
    {
      trpcCode: error.code,
      errName: cause?.name,
      sqlState: cause?.code ?? cause?.cause?.code,
      actorId: req.actorId ?? undefined,
    },
    'procedure failed',
  );
}
