import type { AnyRouter } from '@trpc/server';
import { forEachOpenApiProcedure, type OpenAPIObject, type OpenApiProcedureRecord } from 'trpc-to-openapi';
import { ERROR_STATUS, type ErrorCode } from '../shared/errors.js';
import type { Meta } from './routers/openapi-meta.js';

// What a code generator (openapi-typescript, openapi-generator, an agent framework's tool builder)
// needs from the document beyond what trpc-to-openapi writes: identifiers it can turn into method
// and type names, every header the server reads or sends, and every response a mutation can give.

type Json = Record<string, unknown>;

const SINGULAR: Record<string, string> = {
  tasks: 'Task',
  projects: 'Project',
  workers: 'Worker',
  audit: 'AuditEntry',
  health: 'Health',
  events: 'Event',
};

/** Where `verb + Resource` reads badly; everything else is derived by `operationIdOf`. */
const OPERATION_IDS: Record<string, string> = {
  'tasks.list': 'listTasks',
  'tasks.history': 'getTaskHistory',
  'tasks.submitForReview': 'submitTaskForReview',
  'projects.list': 'listProjects',
  'projects.addMember': 'addProjectMember',
  'projects.removeMember': 'removeProjectMember',
  'workers.list': 'listWorkers',
  'workers.me': 'getCurrentWorker',
  'audit.list': 'listAuditEntries',
  'health.db': 'getDatabaseHealth',
  'events.list': 'listEvents',
};

/** `tasks.start` → `startTask`, `tasks.claimNext` → `claimNextTask`: a verb, then what it acts on. */
export function operationIdOf(procedure: string): string {
  const known = OPERATION_IDS[procedure];
  if (known) return known;
  const [resource = '', action = ''] = procedure.split('.');
  const noun = SINGULAR[resource] ?? resource.charAt(0).toUpperCase() + resource.slice(1);
  return `${action}${noun}`;
}

/** `error.NOT_FOUND` → `NotFoundError`: a schema name that is a valid type name in every language. */
export function errorSchemaName(code: ErrorCode): string {
  const words = code.toLowerCase().split('_');
  return `${words.map((word) => word.charAt(0).toUpperCase() + word.slice(1)).join('')}Error`;
}

const RATE_LIMIT_HEADERS: Record<string, Json> = {
  'X-RateLimit-Limit': {
    description: 'Requests allowed in the current window',
    schema: { type: 'integer' },
  },
  'X-RateLimit-Remaining': {
    description: 'Requests left in the current window',
    schema: { type: 'integer' },
  },
  'X-RateLimit-Reset': {
    description: 'Seconds until the window resets',
    schema: { type: 'integer' },
  },
};

const HEADERS: Record<string, Json> = {
  'X-Request-Id': {
    description: 'The id of this request, also in every error body; quote it in bug reports',
    schema: { type: 'string' },
  },
  ...RATE_LIMIT_HEADERS,
  'Retry-After': {
    description: 'Seconds to wait before trying again',
    schema: { type: 'integer' },
  },
};

const headerRefs = (names: string[]): Json =>
  Object.fromEntries(names.map((name) => [name, { $ref: `#/components/headers/${name}` }]));

const IDEMPOTENCY_KEY = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Retry-safe key: a repeat with the same key and the same request returns the first response and ' +
    'changes nothing; the same key with another request answers 422. Kept 24 hours per caller. When ' +
    'the body also has `idempotencyKey`, the body field is used.',
  schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
};

const MUTATING = new Set(['post', 'put', 'patch', 'delete']);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'] as const;

function renameErrorSchemas(document: OpenAPIObject): OpenAPIObject {
  let text = JSON.stringify(document);
  for (const code of Object.keys(ERROR_STATUS) as ErrorCode[]) {
    text = text.replaceAll(
      `"#/components/schemas/error.${code}"`,
      `"#/components/schemas/${errorSchemaName(code)}"`,
    );
  }
  const renamed = JSON.parse(text) as OpenAPIObject;
  const schemas = (renamed.components?.schemas ?? {}) as Record<string, Json>;
  for (const name of Object.keys(schemas)) {
    const code = name.slice('error.'.length) as ErrorCode;
    if (name.startsWith('error.') && code in ERROR_STATUS) {
      schemas[errorSchemaName(code)] = schemas[name] as Json;
      delete schemas[name];
    }
  }
  return renamed;
}

/** JavaScript's safe-integer bounds that zod writes on every `int()`: noise to a generator. */
function dropSafeIntegerBounds(value: unknown): void {
  if (Array.isArray(value)) {
    for (const item of value) dropSafeIntegerBounds(item);
  } else if (value && typeof value === 'object') {
    const node = value as Json;
    if (node.minimum === Number.MIN_SAFE_INTEGER) delete node.minimum;
    if (node.maximum === Number.MAX_SAFE_INTEGER) delete node.maximum;
    for (const child of Object.values(node)) dropSafeIntegerBounds(child);
  }
}

/**
 * Applies the conventions to a generated document: operationIds from the procedure path, error
 * schemas named as types, the idempotency header and its 422 on every mutation, the request-id and
 * rate-limit headers (when rate limiting is on) on every response, `Retry-After` on 429.
 */
export function applyGeneratorConventions(generated: OpenAPIObject, router: AnyRouter): OpenAPIObject {
  const document = renameErrorSchemas(generated);
  dropSafeIntegerBounds(document);
  document.components = { ...document.components, headers: { ...document.components?.headers, ...HEADERS } };
  const unprocessable = errorSchemaName('UNPROCESSABLE_CONTENT');

  forEachOpenApiProcedure<Meta>(router._def.procedures as OpenApiProcedureRecord, ({ path, meta }) => {
    const operation = (document.paths?.[meta.openapi.path] as Json | undefined)?.[
      meta.openapi.method.toLowerCase()
    ] as Json | undefined;
    if (operation) operation.operationId = operationIdOf(path);
  });

  for (const item of Object.values(document.paths ?? {}) as Json[]) {
    // Liveness (`/health`) is the one path the rate limiter lets through.
    const limited = item !== document.paths?.['/health'];
    for (const method of METHODS) {
      const operation = item[method] as Json | undefined;
      if (!operation) continue;
      const responses = operation.responses as Record<string, Json>;
      if (MUTATING.has(method)) {
        operation.parameters = [...((operation.parameters as Json[] | undefined) ?? []), IDEMPOTENCY_KEY];
        responses['422'] = {
          description: 'Idempotency-Key already used for a different request',
          content: { 'application/json': { schema: { $ref: `#/components/schemas/${unprocessable}` } } },
        };
      }
      for (const [status, response] of Object.entries(responses)) {
        const names = ['X-Request-Id', ...(limited ? Object.keys(RATE_LIMIT_HEADERS) : [])];
        if (status === '429') names.push('Retry-After');
        response.headers = { ...(response.headers as Json | undefined), ...headerRefs(names) };
      }
    }
  }
  return document;
}
