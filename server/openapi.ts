import { generateOpenApiDocument, type OpenAPIObject } from 'trpc-to-openapi';
import { ERROR_REASON_NAMES, ERROR_REASONS, ERROR_STATUS, type ErrorCode } from '../shared/errors.js';
import { applyGeneratorConventions } from './openapi-conventions.js';
import type { AppRouter } from './routers/index.js';
import { nonOkOperations } from './routers/openapi-meta.js';
import { VERSION } from './version.js';

type Json = Record<string, unknown>;

const EXAMPLE_REQUEST_ID = '5f0c6a51-3d4e-4a7b-9a63-0d7c2a8f1e42';

/** The API error body as JSON Schema, one component per code so each response names its code. */
function errorSchema(code: ErrorCode, message: string): Json {
  const status = ERROR_STATUS[code];
  return {
    type: 'object',
    title: `${code} (${status})`,
    description: 'The error body of every REST error.',
    properties: {
      error: { type: 'string', description: 'A human-readable message' },
      code: { type: 'string', const: code },
      status_code: { type: 'integer', const: status },
      reason: { $ref: '#/components/schemas/ErrorReason' },
      issues: {
        type: 'array',
        description: 'Validation problems (400 only): zod issues with `path` and `message`',
        items: { type: 'object', properties: { path: { type: 'array' }, message: { type: 'string' } } },
      },
      requestId: {
        type: 'string',
        description: 'Also in the `x-request-id` header; quote it in bug reports',
      },
    },
    required: ['error', 'code', 'status_code', 'requestId'],
    additionalProperties: false,
    example: { error: message, code, status_code: status, requestId: EXAMPLE_REQUEST_ID },
  };
}

const BODY_ERRORS: Partial<Record<ErrorCode, string>> = {
  PAYLOAD_TOO_LARGE: 'Request body is too large',
  UNSUPPORTED_MEDIA_TYPE: 'Send the body as application/json',
};

const EXAMPLE_TASK = {
  id: 42,
  title: 'Write the release notes',
  description: 'Cover the new workflow and the CLI.',
  status: 'in_progress',
  priority: 'high',
  progressPercent: 40,
  assignedTo: '@release-bot',
  projectSlug: 'website',
  parentId: null,
  labels: ['docs', 'release'],
  dueDate: '2026-12-01T17:00:00.000Z',
  blockedReason: null,
  createdBy: 'alice',
  createdAt: '2026-11-20T09:30:00.000Z',
  updatedAt: '2026-11-21T14:05:12.345Z',
  completedAt: null,
  version: 3,
  requiredCapabilities: ['docs'],
  leaseExpiresAt: '2026-11-21T14:15:12.345Z',
};

const EXAMPLES: Record<string, unknown> = {
  Task: EXAMPLE_TASK,
  TaskPage: { items: [EXAMPLE_TASK], nextCursor: 'eyJrIjoidGFza3MiLCJzIjoiY3JlYXRlZEF0In0' },
  Project: {
    slug: 'website',
    name: 'Website',
    description: null,
    ownerId: 'alice',
    createdAt: '2026-11-01T08:00:00.000Z',
  },
  Worker: {
    id: '@release-bot',
    type: 'agent',
    name: 'Release bot',
    email: null,
    capabilities: ['docs'],
    createdAt: '2026-11-01T08:00:00.000Z',
    lastSeenAt: '2026-11-21T14:05:12.345Z',
  },
  AuditEntry: {
    id: 1007,
    at: '2026-11-21T14:05:12.345Z',
    actorId: '@release-bot',
    actorType: 'agent',
    action: 'progressed',
    taskId: 42,
    projectSlug: 'website',
    context: { from: 'in_progress', to: 'in_progress', before: 20, percent: 40, note: 'draft done' },
    requestId: EXAMPLE_REQUEST_ID,
  },
};

/**
 * `GET /events` also answers as a Server-Sent Events stream, which trpc-to-openapi cannot describe:
 * the same operation gains the `text/event-stream` response and the `Last-Event-ID` header.
 */
function documentEventStream(document: OpenAPIObject): void {
  const operation = (document.paths?.['/events'] as Json | undefined)?.get as
    | { parameters?: Json[]; responses: Record<string, { content?: Record<string, Json> }> }
    | undefined;
  const ok = operation?.responses['200'];
  if (!operation || !ok?.content) throw new Error('no 200 response documented for GET /events');
  operation.parameters = [
    ...(operation.parameters ?? []),
    {
      name: 'Last-Event-ID',
      in: 'header',
      required: false,
      description:
        'With `Accept: text/event-stream`: resume after this event id (what EventSource sends when it reconnects); overrides `after`.',
      schema: { type: 'string', pattern: '^\\d+$' },
    },
  ];
  ok.content['text/event-stream'] = {
    schema: {
      type: 'string',
      description:
        'Sent when the request has `Accept: text/event-stream`: one message per event, as it is committed, in id order, ' +
        'from after `Last-Event-ID` or `after` (from the present without either): `id:` the event id, `event:` its action, ' +
        '`data:` the event JSON (a `TaskEvent`). A `: ping` comment comes every 15 s; the stream ends when the server shuts ' +
        'down, and the client reconnects with `Last-Event-ID`. Too many open streams per caller: 429.',
    },
    example:
      'id: 1007\nevent: progressed\ndata: {"id":1007,"action":"progressed","taskId":42,"task":{"id":42,"progressPercent":40}}\n\n',
  };
}

function operations(document: OpenAPIObject): Json[] {
  return Object.values(document.paths ?? {}).flatMap((item) =>
    ['get', 'post', 'put', 'patch', 'delete']
      .map((method) => (item as Json)[method])
      .filter((op): op is Json => typeof op === 'object' && op !== null),
  );
}

/**
 * The OpenAPI 3.1 document of the REST mirror. trpc-to-openapi generates it from the router; this
 * adds what the router cannot say: our error body, non-200 success codes, examples, `/health`.
 */
export function buildOpenApiDocument(router: AppRouter): OpenAPIObject {
  const document = generateOpenApiDocument(router, {
    title: 'TaskFlow API',
    description:
      'Tasks for teams of humans and AI agents. Every operation here mirrors a tRPC procedure at `/trpc`. ' +
      'Authenticate with `Authorization: Bearer <JWT>` (in development: `npm run token -- --sub alice`). ' +
      'Errors always have the body `{ error, code, status_code, reason?, issues?, requestId }`.',
    version: VERSION,
    openApiVersion: '3.1.0',
    baseUrl: '/api',
    tags: ['tasks', 'projects', 'workers', 'audit', 'events', 'health'],
    securitySchemes: {
      Authorization: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
    },
  });
  const schemas = (document.components?.schemas ?? {}) as Record<string, Json>;
  for (const name of Object.keys(schemas)) {
    const code = name.startsWith('error.') ? (name.slice('error.'.length) as ErrorCode) : null;
    const current = schemas[name];
    if (code && code in ERROR_STATUS && current) {
      schemas[name] = errorSchema(code, String((current.example as Json | undefined)?.message ?? code));
    } else if (current && EXAMPLES[name] !== undefined) {
      current.examples = [EXAMPLES[name]];
    }
  }
  for (const [code, message] of Object.entries(BODY_ERRORS) as [ErrorCode, string][]) {
    schemas[`error.${code}`] = errorSchema(code, message);
  }
  schemas.ErrorReason = {
    type: 'string',
    enum: ERROR_REASON_NAMES,
    description: `Why a request was refused, for programs to branch on:\n${ERROR_REASON_NAMES.map((name) => `- \`${name}\`: ${ERROR_REASONS[name]}`).join('\n')}`,
  };
  schemas['error.UNPROCESSABLE_CONTENT'] = errorSchema(
    'UNPROCESSABLE_CONTENT',
    'This Idempotency-Key was used for a different request; use a new key',
  );

  // Matched by method and path, as the router's meta says them.
  for (const { method, path, status } of nonOkOperations(router)) {
    const operation = (document.paths?.[path] as Json | undefined)?.[method.toLowerCase()] as
      | { responses: Record<string, Json> }
      | undefined;
    const ok = operation?.responses['200'];
    if (!operation || !ok) throw new Error(`no 200 response documented for ${method} ${path}`);
    delete operation.responses['200'];
    operation.responses[String(status)] =
      status === 204 ? { description: 'Done; no content' } : { ...ok, description: 'Created' };
  }

  for (const op of operations(document)) {
    const responses = op.responses as Record<string, Json>;
    const body = op.requestBody as
      | { required?: boolean; content?: Record<string, { schema?: Json }> }
      | undefined;
    const bodySchema = body?.content?.['application/json']?.schema;
    // Nothing required in the body (a workflow action): it may be left out altogether.
    if (body && bodySchema && !(Array.isArray(bodySchema.required) && bodySchema.required.length > 0)) {
      body.required = false;
    }
    // An example on an optional filter is what Swagger UI's "Try it out" fills in, so a first try
    // would list only alice's tasks in the project `website`: filters carry none.
    for (const parameter of (op.parameters ?? []) as { required?: boolean; schema?: Json }[]) {
      if (!parameter.required && parameter.schema) delete parameter.schema.example;
    }
    if (op.requestBody) {
      for (const [code, message] of Object.entries(BODY_ERRORS) as [ErrorCode, string][]) {
        responses[String(ERROR_STATUS[code])] = {
          description: message,
          content: { 'application/json': { schema: { $ref: `#/components/schemas/error.${code}` } } },
        };
      }
    }
  }

  documentEventStream(document);
  document.paths = {
    ...document.paths,
    '/health': {
      servers: [{ url: '/' }],
      get: {
        operationId: 'getHealth',
        summary: 'Liveness',
        description: 'Public. 200 while the process is up, whatever the database does.',
        tags: ['health'],
        security: [],
        responses: {
          '200': {
            description: 'Alive',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  properties: { status: { type: 'string', const: 'ok' }, version: { type: 'string' } },
                  required: ['status', 'version'],
                  examples: [{ status: 'ok', version: VERSION }],
                },
              },
            },
          },
        },
      },
    },
  };
  return applyGeneratorConventions(document, router);
}
