import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorBody } from './error-body.js';
import { type Context, type ContextDeps, createContext } from './trpc/context.js';

export interface McpPluginOptions {
  deps: ContextDeps;
  /** The CORS allow-list: its hosts (and loopback) may reach `/mcp`; nothing else may (DNS rebinding). */
  allowedOrigins: readonly string[];
}

const LOOPBACK_HOSTNAME = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;
// A bare host name or IP literal with an optional port: nothing a URL parser could reinterpret.
const HOST_HEADER = /^([a-z0-9.-]+|\[[0-9a-f:.]+\])(:\d{1,5})?$/i;

function hostnameOf(url: string): string | null {
  try {
    return new URL(url).hostname.toLowerCase();
  } catch {
    return null;
  }
}

/**
 * DNS-rebinding protection, by hand: the SDK's own exists only for Express. A page on another site
 * that resolves its name to this machine still sends its own name in Host (and Origin).
 */
function requestGuard(allowedOrigins: readonly string[]) {
  const origins = new Set(allowedOrigins.map((origin) => origin.replace(/\/+$/, '').toLowerCase()));
  const hostnames = new Set(
    allowedOrigins.map(hostnameOf).filter((hostname): hostname is string => hostname !== null),
  );
  return (request: FastifyRequest): string | null => {
    const host = request.headers.host ?? '';
    const hostname = HOST_HEADER.test(host) ? hostnameOf(`http://${host}`) : null;
    if (!hostname || !(LOOPBACK_HOSTNAME.test(hostname) || hostnames.has(hostname))) {
      return `Host ${JSON.stringify(host)} is not allowed`;
    }
    const origin = request.headers.origin;
    if (origin !== undefined) {
      const originHostname = hostnameOf(origin);
      const known =
        origins.has(origin.toLowerCase()) || (originHostname && LOOPBACK_HOSTNAME.test(originHostname));
      if (!known) return `Origin ${JSON.stringify(origin)} is not allowed`;
    }
    return null;
  };
}

function sendError(reply: FastifyReply, request: FastifyRequest, error: TRPCError) {
  const status = getHTTPStatusCodeFromError(error);
  return reply.status(status).send(errorBody(status, error.message, request.id, { code: error.code }));
}

/**
 * MCP over Streamable HTTP at `/mcp`, stateless: every POST gets a fresh server and transport bound
 * to the caller's identity, so any instance can answer any request.
 */
export async function mcpPlugin(app: FastifyInstance, options: McpPluginOptions): Promise<void> {
  const guard = requestGuard(options.allowedOrigins);
  const contexts = new WeakMap<FastifyRequest, Context>();
  // The SDK is loaded by the first call rather than at start-up (see ./mcp-server.ts).
  let loading: Promise<typeof import('./mcp-server.js')> | undefined;

  // Before the body is read: the host check, then the same bearer token as /trpc and /api.
  app.addHook('onRequest', async (request, reply) => {
    const refusal = guard(request);
    if (refusal) return sendError(reply, request, new TRPCError({ code: 'FORBIDDEN', message: refusal }));
    const ctx = await createContext(options.deps, request);
    if (ctx.authError) return sendError(reply, request, ctx.authError);
    contexts.set(request, ctx);
  });

  app.post('/mcp', { schema: { hide: true } }, async (request, reply) => {
    const ctx = contexts.get(request);
    if (!ctx) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Missing bearer token' });
    loading ??= import('./mcp-server.js');
    const { answerMcp } = await loading;
    await answerMcp(ctx, request, reply);
  });

  // Stateless: no server-initiated stream (GET) and no session to end (DELETE).
  const notAllowed = async (_request: FastifyRequest, reply: FastifyReply) =>
    reply
      .status(405)
      .header('allow', 'POST')
      .send({
        jsonrpc: '2.0',
        error: { code: -32000, message: 'Method not allowed: POST JSON-RPC messages to /mcp' },
        id: null,
      });
  app.get('/mcp', { schema: { hide: true } }, notAllowed);
  app.delete('/mcp', { schema: { hide: true } }, notAllowed);
}
