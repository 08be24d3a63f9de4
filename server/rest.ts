import type { FastifyInstance } from 'fastify';
import { fastifyTRPCOpenApiPlugin } from 'trpc-to-openapi';
import { errorBody } from './error-body.js';
import { logServerError } from './log-errors.js';
import { SUCCESS_STATUS } from './rest-status.js';
import type { AppRouter } from './routers/index.js';
import { type ContextDeps, createContext } from './trpc/context.js';

interface RestErrorPayload {
  message?: unknown;
  code?: unknown;
  issues?: unknown;
}

/** The REST mirror of the router under `/api`, with SPEC §6 error bodies. */
export async function restPlugin(
  app: FastifyInstance,
  options: { router: AppRouter; deps: ContextDeps },
): Promise<void> {
  // trpc-to-openapi writes its own error shape; this scope rewrites it into ours, in one place.
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode < 400 || typeof payload !== 'string') return payload;
    let parsed: RestErrorPayload;
    try {
      parsed = JSON.parse(payload) as RestErrorPayload;
    } catch {
      return payload;
    }
    if ('status_code' in parsed) return payload;
    const issues = Array.isArray(parsed.issues) ? parsed.issues : undefined;
    const message = typeof parsed.message === 'string' ? parsed.message : 'Request failed';
    return JSON.stringify(errorBody(reply.statusCode, message, request.id, { code: parsed.code, issues }));
  });

  await app.register(fastifyTRPCOpenApiPlugin, {
    basePath: '/api',
    router: options.router,
    createContext: ({ req }: { req: Parameters<typeof createContext>[1] }) =>
      createContext(options.deps, req),
    onError: logServerError,
    responseMeta: ({ paths, errors }: { paths?: readonly string[]; errors: readonly unknown[] }) => {
      const status =
        errors.length === 0 && paths?.length === 1 && paths[0] ? SUCCESS_STATUS[paths[0]] : undefined;
      return status ? { status } : {};
    },
  });
}
