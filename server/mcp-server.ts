import { Server } from '@modelcontextprotocol/sdk/server/index.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import {
  CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  ListToolsRequestSchema,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ZodError } from 'zod';
import { errorBody } from './error-body.js';
import { reasonOf, toTRPCError } from './errors.js';
import { logServerError } from './log-errors.js';
import { type Caller, SERVER_INSTRUCTIONS, TOOL_LISTING, TOOLS } from './mcp-tools.js';
import { appRouter } from './routers/index.js';
import type { Context } from './trpc/context.js';
import { createCallerFactory } from './trpc/init.js';
import { VERSION } from './version.js';

// The MCP server, loaded by the /mcp route on first use (see ./mcp.ts): the SDK is a quarter of the
// API's start-up time, and most deployments never see an MCP client. The low-level server, not
// McpServer, so that the tool listing is ours to keep lean (./mcp-tools.ts).

const createCaller = createCallerFactory(appRouter);
const BY_NAME = new Map(TOOLS.map((tool) => [tool.name, tool]));

function buildServer(caller: Caller, request: FastifyRequest): Server {
  const server = new Server(
    { name: 'taskflow', version: VERSION },
    { capabilities: { tools: {} }, instructions: SERVER_INSTRUCTIONS },
  );
  server.setRequestHandler(ListToolsRequestSchema, () => ({ tools: TOOL_LISTING }));
  server.setRequestHandler(CallToolRequestSchema, async ({ params }): Promise<CallToolResult> => {
    const tool = BY_NAME.get(params.name);
    if (!tool) throw new McpError(ErrorCode.InvalidParams, `Unknown tool: ${params.name}`);
    try {
      // The procedure parses the arguments with the schema the listing was made from.
      const result = await tool.run(caller, (params.arguments ?? {}) as never);
      return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
    } catch (error) {
      return toolError(error, request);
    }
  });
  return server;
}

/** A tool error with the message REST would give; the API error body rides along in `_meta`. */
function toolError(error: unknown, request: FastifyRequest): CallToolResult {
  const trpcError = error instanceof TRPCError ? error : toTRPCError(error);
  const status = getHTTPStatusCodeFromError(trpcError);
  if (status >= 500) logServerError({ error: trpcError, req: request });
  const issues = trpcError.cause instanceof ZodError ? trpcError.cause.issues : undefined;
  // An agent reads only the text: name the fields, as REST's `issues` would.
  const message =
    trpcError.code === 'BAD_REQUEST' && issues
      ? `Input validation failed: ${issues.map((issue) => `${issue.path.join('.') || 'input'}: ${issue.message}`).join('; ')}`
      : trpcError.message;
  const body = errorBody(status, message, request.id, {
    code: trpcError.code,
    reason: reasonOf(trpcError),
    issues,
  });
  // The reason leads the text, where an agent that reads only the text can branch on it.
  const text = body.reason ? `${body.reason}: ${body.error}` : body.error;
  return { isError: true, content: [{ type: 'text', text }], _meta: { 'taskflow/error': body } };
}

/** Answers one JSON-RPC POST with a fresh server and transport bound to the caller's context. */
export async function answerMcp(ctx: Context, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const server = buildServer(createCaller(ctx), request);
  const transport = new StreamableHTTPServerTransport({
    sessionIdGenerator: undefined,
    enableJsonResponse: true,
  });

  // The transport writes to Node's response itself. Fastify then sends none of the headers set so
  // far (request id, CORS from @fastify/cors's onRequest hook), so they are copied over here.
  reply.hijack();
  for (const [name, value] of Object.entries(reply.getHeaders())) {
    if (value !== undefined) reply.raw.setHeader(name, value);
  }
  reply.raw.on('close', () => {
    void transport.close();
    void server.close();
  });
  try {
    await server.connect(transport);
    await transport.handleRequest(request.raw, reply.raw, request.body);
  } catch (error) {
    request.log.error({ errName: (error as Error).name }, 'MCP request failed');
    if (!reply.raw.headersSent) {
      reply.raw.writeHead(500, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          jsonrpc: '2.0',
          error: { code: -32603, message: 'Internal server error' },
          id: null,
        }),
      );
    }
  }
}
