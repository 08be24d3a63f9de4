import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js';
import { TRPCError } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ZodError, z } from 'zod';
import { AuditEntry } from '../shared/schemas/audit.js';
import {
  Task,
  TaskBlockInput,
  TaskCreateInput,
  TaskIdInput,
  TaskListInput,
  TaskPage,
  TaskProgressInput,
} from '../shared/schemas/task.js';
import { errorBody } from './error-body.js';
import { toTRPCError } from './errors.js';
import { logServerError } from './log-errors.js';
import { appRouter } from './routers/index.js';
import type { Context } from './trpc/context.js';
import { createCallerFactory } from './trpc/init.js';
import { VERSION } from './version.js';

// The MCP server and its tools, loaded by the /mcp route on first use (see ./mcp.ts): the SDK is
// a quarter of the API's start-up time, and most deployments never see an MCP client.

const createCaller = createCallerFactory(appRouter);
type Caller = ReturnType<typeof createCaller>;

// Fresh objects from the shared shapes: a schema with a registry id would be a bare `$ref` at the
// root of its JSON schema, and MCP requires `type: "object"` there.
const TaskResult = z.object(Task.shape);
const TaskPageResult = z.object(TaskPage.shape);
const HistoryResult = z.object({ entries: z.array(AuditEntry) });

const readOnly: ToolAnnotations = {
  readOnlyHint: true,
  destructiveHint: false,
  idempotentHint: true,
  openWorldHint: false,
};
const write: ToolAnnotations = {
  readOnlyHint: false,
  destructiveHint: false,
  idempotentHint: false,
  openWorldHint: false,
};

/**
 * The tools: each is one procedure of the router, called through a server-side caller, so the
 * rules, visibility checks and audit rows are exactly those of tRPC and REST.
 */
function buildServer(caller: Caller, request: FastifyRequest): McpServer {
  const server = new McpServer({ name: 'taskflow', version: VERSION });

  const tool = <I extends z.ZodType, O extends z.ZodType>(
    name: string,
    config: { title: string; description: string; input: I; output: O; annotations: ToolAnnotations },
    run: (input: z.output<I>) => Promise<z.output<O>>,
  ) =>
    server.registerTool<z.ZodType, z.ZodType>(
      name,
      {
        title: config.title,
        description: config.description,
        inputSchema: config.input,
        outputSchema: config.output,
        annotations: config.annotations,
      },
      // The SDK has already validated the arguments with the same zod schema the procedure uses.
      async (input: unknown): Promise<CallToolResult> => {
        try {
          const result = (await run(input as z.output<I>)) as Record<string, unknown>;
          return { content: [{ type: 'text', text: JSON.stringify(result) }], structuredContent: result };
        } catch (error) {
          return toolError(error, request);
        }
      },
    );

  tool(
    'list_tasks',
    {
      title: 'List tasks',
      description:
        'Tasks visible to you, filtered and sorted, one page at a time. `assignedTo: "me"` lists your own work, `assignedTo: "none"` with `status: ["pending"]` lists work you can claim; `updatedSince` polls for changes.',
      input: TaskListInput,
      output: TaskPageResult,
      annotations: readOnly,
    },
    (input) => caller.tasks.list(input),
  );
  tool(
    'get_task',
    {
      title: 'Get a task',
      description: 'One task by id.',
      input: TaskIdInput,
      output: TaskResult,
      annotations: readOnly,
    },
    (input) => caller.tasks.get(input),
  );
  tool(
    'create_task',
    {
      title: 'Create a task',
      description: 'Creates a pending task, optionally in a project and under a parent task.',
      input: TaskCreateInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.create(input),
  );
  tool(
    'claim_task',
    {
      title: 'Claim a task',
      description:
        'Starts a pending task and assigns it to you (pending → in_progress). If someone else claimed it first, this fails with a conflict: pick another task.',
      input: TaskIdInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.start(input),
  );
  tool(
    'update_progress',
    {
      title: 'Report progress',
      description: 'Sets the progress (0-100) of a task you hold, with an optional note for the history.',
      input: TaskProgressInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.progress(input),
  );
  tool(
    'submit_for_review',
    {
      title: 'Submit for review',
      description: 'Moves a task you hold from in_progress to review.',
      input: TaskIdInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.submitForReview(input),
  );
  tool(
    'complete_task',
    {
      title: 'Complete a task',
      description: 'Completes a task in progress or in review (progress becomes 100).',
      input: TaskIdInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.complete(input),
  );
  tool(
    'block_task',
    {
      title: 'Block a task',
      description: 'Marks a task blocked, with the reason (what or whom it waits for).',
      input: TaskBlockInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.block(input),
  );
  tool(
    'unblock_task',
    {
      title: 'Unblock a task',
      description: 'Clears the block: back to in_progress if assigned, else pending.',
      input: TaskIdInput,
      output: TaskResult,
      annotations: write,
    },
    (input) => caller.tasks.unblock(input),
  );
  tool(
    'task_history',
    {
      title: 'Task history',
      description: "A task's audit trail, oldest first: who did what, human or agent, and when.",
      input: TaskIdInput,
      output: HistoryResult,
      annotations: readOnly,
    },
    async (input) => ({ entries: await caller.tasks.history(input) }),
  );

  return server;
}

/** A tool error with the message REST would give; the API error body rides along in `_meta`. */
function toolError(error: unknown, request: FastifyRequest): CallToolResult {
  const trpcError = error instanceof TRPCError ? error : toTRPCError(error);
  const status = getHTTPStatusCodeFromError(trpcError);
  if (status >= 500) logServerError({ error: trpcError, req: request });
  const issues = trpcError.cause instanceof ZodError ? trpcError.cause.issues : undefined;
  const message = trpcError.code === 'BAD_REQUEST' && issues ? 'Input validation failed' : trpcError.message;
  const body = errorBody(status, message, request.id, { code: trpcError.code, issues });
  return { isError: true, content: [{ type: 'text', text: body.error }], _meta: { 'taskflow/error': body } };
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
