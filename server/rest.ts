import type { FastifyInstance } from 'fastify';
import { fastifyTRPCOpenApiPlugin } from 'trpc-to-openapi';
import { errorBody } from './error-body.js';
import { logServerError } from './log-errors.js';
import type { AppRouter } from './routers/index.js';
import { nonOkOperations } from './routers/openapi-meta.js';
import { type ContextDeps, createContext } from './trpc/context.js';
import { runProcedure } from './trpc/run-procedure.js';

/** Deeper JSON than any input has; trpc-to-openapi re-stringifies the body, which overflows the stack near 5 000. */
const MAX_BODY_DEPTH = 64;

/** Whether a parsed JSON value nests deeper than `max` arrays/objects (iteratively: no stack to overflow). */
function nestsDeeperThan(value: unknown, max: number): boolean {
  const stack: [unknown, number][] = [[value, 1]];
  for (let item = stack.pop(); item; item = stack.pop()) {
    const [node, depth] = item;
    if (node === null || typeof node !== 'object') continue;
    if (depth > max) return true;
    for (const child of Object.values(node)) stack.push([child, depth + 1]);
  }
  return false;
}

interface RestErrorPayload {
  message?: unknown;
  code?: unknown;
  issues?: unknown;
  data?: { reason?: unknown };
}

/** The REST mirror of the router under `/api`, with the API error body. */
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
    return JSON.stringify(
      errorBody(reply.statusCode, message, request.id, {
        code: parsed.code,
        reason: parsed.data?.reason,
        issues,
      }),
    );
  });

  // A deeply nested body (`{"title":[[[[…]]]]}`) would otherwise be a 500 (RangeError) instead of a 400.
  app.addHook('preValidation', async (request) => {
    if (nestsDeeperThan(request.body, MAX_BODY_DEPTH)) {
      throw Object.assign(new Error(`JSON body nested deeper than ${MAX_BODY_DEPTH} levels`), {
        statusCode: 400,
      });
    }
  });

  // `curl -X POST /api/tasks/7/start` has no body to describe: an empty POST/PUT/PATCH without a
  // Content-Type is read as `{}` rather than refused with 415. A body with another type still is.
  app.addHook('preValidation', async (request) => {
    const empty = request.body === undefined || request.body === null || request.body === '';
    if (empty && !request.headers['content-type'] && ['POST', 'PUT', 'PATCH'].includes(request.method)) {
      request.headers['content-type'] = 'application/json';
      request.body = {};
    }
  });

  const successStatus = new Map(nonOkOperations(options.router).map((op) => [op.procedure, op.status]));
  await app.register(fastifyTRPCOpenApiPlugin, {
    basePath: '/api',
    router: options.router,
    createContext: ({ req }: { req: Parameters<typeof createContext>[1] }) =>
      createContext(options.deps, req),
    onError: logServerError,
    // The patch's option (server/patches): REST calls go through the tRPC adapter's runner too.
    callProcedure: runProcedure,
    responseMeta: ({ paths, errors }: { paths?: readonly string[]; errors: readonly unknown[] }) => {
      const status =
        errors.length === 0 && paths?.length === 1 && paths[0] ? successStatus.get(paths[0]) : undefined;
      return status ? { status } : {};
    },
  });
}
